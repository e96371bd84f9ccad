"""Whisper's well-known inventions on silence, noise and breathing, and its repetition loops.

Whisper was trained on subtitled video, so on audio without words it tends to emit the credits and
sign-offs those subtitles ended with. Credits ("subtitles by ...") are never said in a consultation and
are always dropped; sign-offs ("thank you") are only dropped when the utterance is short: in a long
utterance they are more likely to have been said.
"""

from __future__ import annotations

import re
import unicodedata

# Subtitle credits and channel plugs: nobody says these to their doctor.
_CREDITS = (
    # en
    "Subtitles by the Amara.org community",
    "Please subscribe",
    "Like and subscribe",
    "Don't forget to like and subscribe",
    # zh
    "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目",
    "字幕由Amara.org社区提供",
    "小编字幕由Amara.org社区提供",
    "中文字幕志愿者 李宗盛",
    "优优独播剧场——YoYo Television Series Exclusive",
    "明镜需要您的支持 欢迎订阅明镜",
    # ja
    "チャンネル登録お願いします",
    "チャンネル登録よろしくお願いします",
    # ru
    "Субтитры сделал DimaTorzok",
    "Субтитры создавались сообществом Amara.org",
    "Редактор субтитров А.Синецкая Корректор А.Егорова",
    "Подписывайтесь на канал",
    # es
    "Subtítulos realizados por la comunidad de Amara.org",
    "Subtítulos por la comunidad de Amara.org",
    "Suscríbete al canal",
    # fr
    "Sous-titres réalisés para la communauté d'Amara.org",
    "Sous-titres réalisés par la communauté d'Amara.org",
    "Sous-titrage ST' 501",
    "Sous-titrage Société Radio-Canada",
    "Abonnez-vous",
    # ar
    "ترجمة نانسي قنقر",
    "اشتركوا في القناة",
    "اشترك في القناة",
    "لا تنسوا الاشتراك في القناة",
    # tr
    "Altyazı M.K.",
    "Abone olmayı unutmayın",
    "Kanalıma abone olmayı unutmayın",
    # vi
    "Hãy subscribe cho kênh",
    "Hãy subscribe cho kênh Ghiền Mì Gõ Để không bỏ lỡ những video hấp dẫn",
    "Hãy đăng ký kênh",
    # id
    "Jangan lupa subscribe",
    "Jangan lupa like dan subscribe",
    # th
    "กดติดตามช่อง",
    "อย่าลืมกดติดตาม",
    # de (Whisper knows it; BabelCall's speakers may use it)
    "Untertitel im Auftrag des ZDF, 2017",
    "Untertitel der Amara.org-Community",
    "Untertitelung des ZDF, 2020",
)

# Sign-offs and fillers: real words, but on short non-speech they are almost always invented.
# "Okay." is deliberately absent: it is a patient's commonest one-word answer, and filtering it dropped
# six genuine turns of the benchmark consultation.
_SIGN_OFFS = (
    # en
    "you",
    "Thank you.",
    "Thank you very much.",
    "Thank you so much.",
    "Thanks for watching!",
    "Thank you for watching.",
    "Thanks for watching and see you next time",
    "Bye.",
    "So",
    # zh
    "谢谢观看",
    "谢谢大家",
    "感谢观看",
    "谢谢",
    # ja
    "ご視聴ありがとうございました",
    "ありがとうございました",
    "おやすみなさい",
    # ru
    "Продолжение следует...",
    "Спасибо за внимание",
    "Спасибо за просмотр",
    "Спасибо",
    # es
    "Gracias por ver el video.",
    "Gracias por ver",
    "Gracias.",
    "Muchas gracias.",
    # fr
    "Merci.",
    "Merci d'avoir regardé cette vidéo.",
    "Merci à tous",
    "Au revoir.",
    # ar
    "شكرا",
    "شكرا لكم",
    "شكرا على المشاهدة",
    "شكرا لكم على المشاهدة",
    # tr
    "İzlediğiniz için teşekkürler",
    "İzlediğiniz için teşekkür ederim",
    "Teşekkürler",
    "Teşekkür ederim",
    # vi
    "Cảm ơn các bạn đã theo dõi",
    "Cảm ơn các bạn đã xem video",
    "Cảm ơn các bạn",
    "Cảm ơn",
    # id
    "Terima kasih telah menonton",
    "Terima kasih sudah menonton",
    "Terima kasih",
    # th
    "ขอบคุณที่รับชม",
    "ขอบคุณครับ",
    "ขอบคุณค่ะ",
    # de
    "Vielen Dank.",
    "Danke fürs Zuschauen",
)

# Longer than this, a sign-off is taken as genuinely spoken.
MAX_SUSPECT_UTTERANCE_S = 4.0

# A loop repeats one n-gram back to back. People do repeat themselves ("no, no, no", "very very very")
# but rarely four times in a row; Whisper's loops under noise run to dozens. Four keeps the former.
MIN_LOOP_REPEATS = 4
_MAX_LOOP_NGRAM = 8  # longer loops are whole sentences, which the decoder's compression guard catches

# Scripts written without spaces between words: their loops are found over characters.
_UNSPACED = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def normalise(text: str) -> str:
    """Case, punctuation, spaces and diacritics folded away, for matching Whisper's variants."""
    # Turkish dotless ı has no case partner outside Turkish casing rules: "ALTYAZI" must still match.
    decomposed = unicodedata.normalize("NFKD", text.casefold().replace("ı", "i"))
    return "".join(c for c in decomposed if unicodedata.category(c)[0] in "LN")


_CREDIT_KEYS = frozenset(normalise(p) for p in _CREDITS)
_SIGN_OFF_KEYS = frozenset(normalise(p) for p in _SIGN_OFFS)


def clean_transcript(text: str, utterance_s: float) -> str:
    """Whisper's text with repetition loops collapsed; "" when what is left is boilerplate."""
    text = trim_repetition(text)
    return "" if is_hallucination(text, utterance_s) else text


def is_hallucination(text: str, utterance_s: float) -> bool:
    """True when `text` is boilerplate Whisper invents on non-speech (sign-offs: short utterances only)."""
    key = normalise(text)
    if not key:
        return True
    return key in _CREDIT_KEYS or (utterance_s <= MAX_SUSPECT_UTTERANCE_S and key in _SIGN_OFF_KEYS)


def trim_repetition(text: str) -> str:
    """Collapse any n-gram repeated MIN_LOOP_REPEATS or more times back to back into one occurrence."""
    if bool(_UNSPACED.search(text)) and " " not in text.strip():
        characters = list(text)
        keys = [normalise(c) for c in characters]
        # One repeated character is laughter or emphasis in these scripts ("哈哈哈哈"), not a loop.
        return "".join(_collapse_loops(characters, keys, MIN_LOOP_REPEATS, single=2 * MIN_LOOP_REPEATS))
    # A loop inside one word ("M.F.M.F.M.F.M.F.M.F.M.F.M.F.M.F."), character for character, needs twice
    # as many repeats as one of words: "hahaha" and "mmmm" are said.
    words = ["".join(_collapse_loops(list(w), list(w), 2 * MIN_LOOP_REPEATS)) for w in text.split(" ")]
    return " ".join(_collapse_loops(words, [normalise(w) for w in words], MIN_LOOP_REPEATS))


def _collapse_loops(units: list[str], keys: list[str], needed: int, single: int | None = None) -> list[str]:
    """`units` with each run of an n-gram (compared by `keys`, up to _MAX_LOOP_NGRAM units) repeated
    back to back `needed` times or more (a single unit: `single` times, if given) kept once."""
    out: list[str] = []
    i = 0
    while i < len(units):
        collapsed = False
        for n in range(1, min(_MAX_LOOP_NGRAM, (len(units) - i) // MIN_LOOP_REPEATS) + 1):
            gram = keys[i : i + n]
            if not any(gram):
                continue
            repeats = 1
            while keys[i + repeats * n : i + (repeats + 1) * n] == gram:
                repeats += 1
            if repeats >= (single if n == 1 and single is not None else needed):
                kept = units[i : i + n]
                # The last copy carries the sentence's own punctuation ("petite petite petite.").
                kept[-1] = units[i + repeats * n - 1] if n == 1 else kept[-1]
                out.extend(kept)
                i += repeats * n
                collapsed = True
                break
        if not collapsed:
            out.append(units[i])
            i += 1
    return out
