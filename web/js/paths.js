// How a caption's or a chat message's text was made from what was said or typed (protocol/captions.py:
// TranslationPath, `model`, `note`), as the reader sees it: the language badge, its tooltip naming the
// path and the model(s), and the caveat.

import { languageName, t } from "./i18n.js";

const PATH_KEYS = {
  original: "captions.pathOriginal",
  machine: "captions.pathMachine",
  pivot: "captions.pathPivot",
  whisper: "captions.pathWhisper",
  untranslated: "captions.pathUntranslated",
};

export function pathLabel(path) {
  return PATH_KEYS[path] ? t(PATH_KEYS[path]) : path;
}

// "en" for text in the language it was spoken or typed in, "fr→en" for text read in another language.
export function badgeText(source, shown) {
  return source === shown ? shown : `${source}→${shown}`;
}

// The languages the text went through: "zh→en→fr" along a pivot through English.
function languageChain(path, source, shown) {
  if (path === "pivot") return `${source}→en→${shown}`;
  return badgeText(source, shown);
}

// The badge's tooltip: which path produced the text, e.g. "machine translation through English —
// zh→en→fr: opus-mt-zh-en + opus-mt-en-fr".
export function provenance(path, source, shown, model) {
  const label = pathLabel(path);
  if (path === "original" || path === "untranslated") return label;
  const models = model ? `: ${model.split("+").join(" + ")}` : "";
  return `${label} — ${languageChain(path, source, shown)}${models}`;
}

// The server's caveats (mt/engine.py) name the languages by code; the reader gets them in the
// interface's language. A caveat of another shape is shown as the server wrote it.
const NO_MODEL = /^not translated: no model for (\w+)→(\w+)$/;
const MODEL_FAILED = /^not translated: .+ failed for (\w+)→(\w+)$/;
const WHISPER_NEXT = /^not translated: (\w+)→(\w+) needs Whisper's English, which starts with the next sentence$/;
const FOLLOWS = "translation follows when the sentence ends";

export function noteText(note, path) {
  if (!note) return path === "untranslated" ? pathLabel(path) : "";
  const missing = note.match(NO_MODEL);
  if (missing) return t("captions.notTranslated", { from: languageName(missing[1]), to: languageName(missing[2]) });
  const failed = note.match(MODEL_FAILED);
  if (failed) return t("captions.translationFailed", { from: languageName(failed[1]), to: languageName(failed[2]) });
  const next = note.match(WHISPER_NEXT);
  if (next) return t("captions.whisperNextSentence", { from: languageName(next[1]), to: languageName(next[2]) });
  if (note === FOLLOWS) return t("captions.followsAtSentenceEnd");
  return note;
}
