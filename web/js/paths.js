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

// Why a caption or a chat message stays as spoken (protocol/captions.py: NoteCode), in the reader's
// interface language, with the languages named in it. `item` is a caption event or a chat message; a
// note without a code this page knows (an older or newer server) is shown as the server wrote it.
const NOTE_KEYS = {
  no_model: "captions.notTranslated",
  translation_failed: "captions.translationFailed",
  whisper_next_sentence: "captions.whisperNextSentence",
  repeated_source: "captions.repeatedSource",
  follows_at_sentence_end: "captions.followsAtSentenceEnd",
};

export function noteText(item) {
  if (!item.note) return item.path === "untranslated" ? pathLabel(item.path) : "";
  const key = NOTE_KEYS[item.note_code];
  if (!key || !item.target_language) return item.note;
  return t(key, { from: languageName(item.source_language), to: languageName(item.target_language) });
}
