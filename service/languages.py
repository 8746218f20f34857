"""Language codes as LibreTranslate's clients send them: any case, with its aliases."""

from __future__ import annotations

NAMES = {
    "ar": "Arabic", "cs": "Czech", "da": "Danish", "de": "German", "el": "Greek",
    "en": "English", "es": "Spanish", "et": "Estonian", "fi": "Finnish", "fr": "French",
    "hi": "Hindi", "hu": "Hungarian", "it": "Italian", "ja": "Japanese", "ko": "Korean",
    "lt": "Lithuanian", "lv": "Latvian", "nl": "Dutch", "pb": "Portuguese (Brazil)",
    "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak",
    "sv": "Swedish", "tr": "Turkish", "uk": "Ukrainian", "zh": "Chinese",
    "zt": "Chinese (traditional)",
}  # fmt: skip

# LibreTranslate's aliases (libretranslate/language.py) and the variants it falls back to.
ALIASES = {"pt-br": "pb", "zh-hans": "zh", "zh-cn": "zh", "zh-hant": "zt", "zh-tw": "zt"}
VARIANTS = {"pt": ["pb"], "pb": ["pt"], "zh": ["zt"], "zt": ["zh"]}


def canonical(code: str) -> str:
    """'EN' -> 'en', 'pt-BR' -> 'pb', 'zh-Hans' -> 'zh'."""
    code = code.strip().lower().replace("_", "-")
    return ALIASES.get(code, code)


def resolve(code: str, held: set[str]) -> str | None:
    """The code among ``held`` that ``code`` means (itself, or a variant), or None."""
    code = canonical(code)
    for candidate in [code, *VARIANTS.get(code, [])]:
        if candidate in held:
            return candidate
    return None


def name(code: str) -> str:
    return NAMES.get(code, code)
