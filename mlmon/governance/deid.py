"""De-identification primitives shared by the edge and governance.

Request ids, golden-sample ids, study UIDs and every other identifier that
must be countable but never readable become ``HMAC-SHA256(secret, id)`` with a
customer-held secret: stable (the same id maps to the same token, so joins
and distinct counts work) and not reversible without the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from mlmon.errors import ConfigError
from mlmon.governance import _names

__all__ = [
    "DETECTORS",
    "DETECTOR_NAMES",
    "Detector",
    "hmac_id",
    "hmac_ids",
    "mask",
    "normalise_text",
    "scan",
]

MIN_SECRET_BYTES = 16


def _check_secret(secret: bytes) -> bytes:
    if not isinstance(secret, bytes | bytearray):
        raise ConfigError(
            "HMAC secret must be bytes; read it from a file or an environment variable"
        )
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"HMAC secret is {len(secret)} bytes; use at least {MIN_SECRET_BYTES} random bytes "
            "(e.g. `openssl rand -hex 32`)"
        )
    return bytes(secret)


def hmac_id(secret: bytes, value: str | bytes) -> str:
    """Return the hex HMAC-SHA256 of one identifier.

    Examples
    --------
    >>> hmac_id(b"0" * 32, "req-1")[:12]
    '3684b3c19cdb'
    """
    key = _check_secret(secret)
    data = value.encode("utf-8") if isinstance(value, str) else value
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def hmac_ids(secret: bytes, values: Iterable[str | bytes | None]) -> list[str | None]:
    """HMAC each identifier; ``None`` stays ``None``."""
    base = hmac.new(_check_secret(secret), digestmod=hashlib.sha256)  # keyed once, copied per id
    out: list[str | None] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        h = base.copy()
        h.update(v.encode("utf-8") if isinstance(v, str) else v)
        out.append(h.hexdigest())
    return out


# -- detectors of identifiers in text ------------------------------------------------------
#
# Every kept text value of a samples batch is normalised (normalise_text), then run through
# DETECTORS in order. The table is the single source: docs/samples.md lists it, the corpus
# test (tests/governance/test_deid_corpus.py) plants at least one value per detector.

_ZERO_WIDTH = {0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF}
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d\u2043"


def normalise_text(text: str) -> str:
    """The form detectors read: NFKC, every decimal digit as ASCII, one kind of space and dash.

    Fullwidth and other compatibility forms become ASCII (NFKC); digits of any script
    (Arabic-Indic, Devanagari, Bengali, Thai...) become ``0-9``; zero-width and other
    invisible format characters are removed; every Unicode space, tab or line break
    becomes one space; every dash or minus sign becomes ``-``.

    Examples
    --------
    >>> normalise_text("１２３\u2013٤٥\u200b-6789\u00a0x")
    '123-45-6789 x'
    """
    text = unicodedata.normalize("NFKC", text)
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if ch.isascii():
            out.append(" " if ch in "\t\n\r\v\f" else ch)
        elif ch.isdecimal():
            out.append(str(unicodedata.decimal(ch)))
        elif code in _ZERO_WIDTH or unicodedata.category(ch) == "Cf":
            continue
        elif ch.isspace() or unicodedata.category(ch) == "Zs":
            out.append(" ")
        elif ch in _DASHES:
            out.append("-")
        else:
            out.append(ch)
    return re.sub(r" {2,}", " ", "".join(out)).strip()


def _fold(word: str) -> str:
    """Lower case, accents and apostrophes removed (``O'Brien`` -> ``obrien``, ``Müller`` -> ``muller``)."""
    word = word.lower().replace("ß", "ss").translate(_FOLD)
    word = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
    return re.sub(r"['’`]", "", word)


_FOLD = str.maketrans({"ø": "o", "æ": "ae", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"})

# separators inside a number: "123-45-6789", "123 45 6789", "123 - 45 - 6789", "123.45.6789"
_SEP = r"(?:\s?[-./]\s?|\s)"
_NUM_RUN = re.compile(r"\d(?:(?:\s?[-./_,:;|*~#+]\s?|\s|\)\s?)?\d)*")
_MONTHS = (
    # English, French, German, Spanish, Italian, Dutch, Portuguese (full and 3-letter forms)
    r"jan(?:uary|uar|vier|eiro|uari)?|feb(?:ruary|ruar|rero|braio|ruari)?|f[ée]v(?:rier)?|"
    r"fevereiro|mar(?:ch|s|zo|ço|t)?|m[äa]rz|maart|apr(?:il|ile)?|avr(?:il)?|abr(?:il)?|"
    r"may(?:o)?|mai|mei|maggio|maio|jun(?:e|i|io|ho)?|juin|giugno|jul(?:y|i|io|ho)?|juil(?:let)?|"
    r"luglio|aug(?:ust|ustus)?|ao[uû]t|ago(?:sto)?|sep(?:t|tember|tiembre|tembre)?|set(?:tembre|embro)?|"
    r"oct(?:ober|obre)?|okt(?:ober)?|ott(?:obre)?|out(?:ubro)?|nov(?:ember|embre|iembre|embro)?|"
    r"dec(?:ember)?|d[ée]c(?:embre)?|dez(?:ember|embro)?|dic(?:iembre|embre)?"
)
_D = r"(?:0?[1-9]|[12]\d|3[01])"
_M = r"(?:0?[1-9]|1[0-2])"
_Y = r"(?:1[89]\d\d|20\d\d)"
_STREET_EN = (
    r"street|st|avenue|ave|av|road|rd|lane|ln|drive|dr|boulevard|blvd|court|ct|place|pl|way|"
    r"close|crescent|cres|terrace|tce|square|sq|highway|hwy|parkway|pkwy|circle|cir|row|gardens|"
    r"gdns|grove|walk|mews|alley|trail|crossing|broadway"
)
_STREET_BEFORE = (
    r"rue|avenue|av\.|boulevard|bd|chemin|all[ée]e|impasse|quai|route|cours|calle|c/|avenida|"
    r"avda\.?|rua|travessa|via|viale|piazza|piazzale|corso|largo|vicolo|plaza|paseo|carrer|"
    r"ulica|ul\.|strada|calea|odos|sokak|cadde(?:si)?"
)
_STREET_COMPOUND = (
    r"stra(?:ss|ß)e|str\.|weg|gasse|platz|allee|ufer|chaussee|straat|laan|gracht|plein|kade|"
    r"dijk|singel|steeg|vej|gade|gatan|v[äa]gen|veien|gata|tie|katu"
)
_TITLES = (
    r"Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sr|Sra|Srta|Sister|Nurse|Herr|Frau|Mme|Mlle|M|Sig|Sig\.ra|"
    r"Dott|Dott\.ssa|Dña|Don|Doña|Dhr|Mevr|Pan|Pani|Sayın|Bay|Bayan|Shri|Smt|Sri"
)
_NAME_LABELS = (
    r"name|patient|pt|nom|pr[ée]nom|nombre|apellidos?|nome|cognome|naam|voornaam|nachname|"
    r"vorname|navn|imi[eę]|nazwisko|full name|signed|seen by|attending|relative|next of kin"
)
_CAPWORD = r"[A-ZÀ-ÖØ-ÞĀ-ſ][\w'’-]*"


@dataclass(frozen=True)
class Detector:
    """One kind of identifier: its name (the reason counted), its mask token, how it is found."""

    name: str
    token: str
    what: str
    #: what it matches
    pattern: re.Pattern[str] | None = None
    #: spans found by code rather than one pattern (names, long numbers)
    find: Callable[[str], list[tuple[int, int]]] | None = None
    #: what may follow a match and goes with it (the rest of an address); never across a "."
    tail: re.Pattern[str] | None = None

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of ``text`` (normalised) that this detector flags."""
        found = [m.span() for m in self.pattern.finditer(text)] if self.pattern else []
        if self.tail is not None:
            found = [(a, _tail_end(self.tail, text, b)) for a, b in found]
        if self.find is not None:
            found += self.find(text)
        return _merge(found)


def _tail_end(tail: re.Pattern[str], text: str, end: int) -> int:
    if text[end - 1] == ".":
        return end
    m = tail.match(text, end)
    return m.end() if m else end


# after a street address: more parts of it, each with a digit or a capital ("#05-67",
# "Queen's Gate", "Springfield"), separated by a space or a comma
_ADDRESS_TAIL = re.compile(r"(?:,?\s?(?:#?[\w'’./-]*\d[\w'’./#-]*|[A-Z][\w'’.-]*))*")


def _rx(pattern: str, flags: int = re.IGNORECASE) -> re.Pattern[str]:
    return re.compile(pattern, flags)


def _number_spans(text: str) -> list[tuple[int, int]]:
    """Runs of digits joined by separators with 6+ digits in all, or 5+ digits in a row."""
    out = []
    for m in _NUM_RUN.finditer(text):
        digits = sum(c.isdigit() for c in m.group())
        longest = max(len(r) for r in re.findall(r"\d+", m.group()))
        if digits >= 6 or longest >= 5:
            out.append(m.span())
    return out


_WORD = re.compile(r"[^\W\d_](?:[\w'’]|-(?=\w))*")
_PARTICLES = {"van", "von", "de", "der", "den", "da", "di", "del", "della", "dos", "du", "la",
              "le", "al", "el", "bin", "ibn", "ben", "ter", "ten", "zu", "af", "y", "mc"}  # fmt: skip


def _is_cap(word: str) -> bool:
    return word[:1].isupper()


def _name_kind(word: str) -> int:
    """0: not a name; 1: a name only beside another capitalised word; 2: a name."""
    cap = word[:1].isupper()
    best = 0
    for part in re.sub(r"['’]s$", "", word).split("-"):
        p = _fold(part)
        if not p:
            continue
        if p in _names.ANY_CASE or (cap and p in _names.CAPITALISED):
            return 2
        if p in _names.AMBIGUOUS:
            best = max(best, int(cap))
            continue
        if (
            part[:1].isupper()
            and len(p) >= 6
            and p not in _names.NOT_SURNAMES
            and p.endswith(_SUFFIXES)
        ):
            return 2
        if cap and p in _names.IN_PAIRS:
            best = 1
    return best


_SUFFIXES = tuple(_fold(s) for s in _names.SURNAME_SUFFIXES)


def _name_spans(text: str) -> list[tuple[int, int]]:
    """A known given name or surname, with the capitalised words, initials and particles next to it."""
    words = list(_WORD.finditer(text))
    kinds = [_name_kind(w.group()) for w in words]

    def joined(i: int, j: int) -> bool:  # words i and j (= i + 1) are parts of one name
        gap = text[words[i].end() : words[j].start()]
        return gap.strip(" ,.") == "" and len(gap) <= 3

    spans: list[tuple[int, int]] = []
    for i in range(len(words)):
        if kinds[i] == 0:
            continue
        nxt = words[i + 1].group() if i + 1 < len(words) else ""
        if _fold(nxt) in _names.EPONYM_NOUNS:
            continue  # an eponym: Wilson's disease, Hashimoto thyroiditis
        if kinds[i] == 1 and not (  # an ambiguous name counts only beside another name
            (i > 0 and joined(i - 1, i) and kinds[i - 1])
            or (i + 1 < len(words) and joined(i, i + 1) and kinds[i + 1])
        ):
            continue
        lo = hi = i
        # widen over neighbours in the same name: capitalised words, initials ("Q."), particles,
        # "Surname, Given" (a comma), separated by at most a space, a comma or a period
        while lo > 0 and joined(lo - 1, lo):
            prev = words[lo - 1].group()
            if not (_is_cap(prev) or prev.lower() in _PARTICLES or kinds[lo - 1] == 2):
                break
            lo -= 1
        while hi + 1 < len(words) and joined(hi, hi + 1):
            nw = words[hi + 1].group()
            if not (_is_cap(nw) or nw.lower() in _PARTICLES or kinds[hi + 1] == 2):
                break
            hi += 1
        end = words[hi].end()
        if end < len(text) and text[end] == "." and len(words[hi].group()) == 1:
            end += 1
        spans.append((words[lo].start(), end))
    return _merge(spans)


def _widen(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans grown to whole digit runs and words, so a mask never leaves part of an id behind."""
    runs = [m.span() for m in _NUM_RUN.finditer(text)]
    grown = []
    for s, e in spans:
        for rs, re_ in runs:
            if rs < e and s < re_:
                s, e = min(s, rs), max(e, re_)
        while s > 0 and text[s - 1].isalnum():
            s -= 1
        while e < len(text) and text[e].isalnum():
            e += 1
        grown.append((s, e))
    return _merge(grown)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


#: The detectors, in the order they run (a later one sees the tokens of the earlier ones).
DETECTORS: tuple[Detector, ...] = (
    Detector(
        "email",
        "[EMAIL]",
        "e-mail addresses, also with spaces, (at) or [at], spelled out (jane at example dot org), any script",
        _rx(
            r"[\w.%+'-]+\s?(?:@|\(at\)|\[at\]|\{at\})\s?[\w-]+(?:\s?(?:\.|\(dot\)|\[dot\])\s?[\w-]+)*\s?(?:\.|\(dot\)|\[dot\])\s?[^\W\d_]{2,}\b"
            r"|[\w.%+'-]+(?:\s+dot\s+[\w-]+)*\s+at\s+[\w-]+(?:\s+dot\s+[\w-]+)+"
        ),
    ),
    Detector(
        "url",
        "[URL]",
        "web addresses (http://, https://, www.)",
        _rx(r"\b(?:https?://|www\.)[^\s<>\"]+"),
    ),
    Detector(
        "ip_address",
        "[IP]",
        "IPv4 and IPv6 addresses",
        _rx(
            r"\b(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}\b"
            r"|\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|\b(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?\b"
        ),
    ),
    Detector(
        "date",
        "[DATE]",
        "dates (of birth): ISO, d/m/y, m/d/y, d.m.yyyy, month names in 7 languages, labelled DOB",
        _rx(
            rf"\b(?:dob|d\.o\.b\.?|date of birth|born|birth ?date|geb(?:oren|\.)?|n[ée]e?|nat[oa]|nacid[oa]|geboren op|f\. nac\.?)\s*[:=]?\s*(?:on\s+)?[\w./-]*\d[\w./-]*(?:\s+\w+\s+\d{{2,4}})?"
            rf"|\b{_Y}\s?[-/.]\s?{_M}\s?[-/.]\s?{_D}(?:[T ]\d{{1,2}}:\d{{2}}(?::\d{{2}}(?:\.\d+)?)?(?:Z|[+-]\d{{2}}:?\d{{2}})?)?\b"
            rf"|\b\d{{1,2}}\s?[-/]\s?\d{{1,2}}\s?[-/]\s?(?:\d{{4}}|\d{{2}})\b"
            rf"|\b\d{{1,2}}\s?\.\s?\d{{1,2}}\s?\.\s?{_Y}\b"
            rf"|\b\d{{1,2}}(?:st|nd|rd|th|er|º|\.)?\s+(?:de\s+)?(?:{_MONTHS})\.?,?\s+(?:de\s+)?\d{{2,4}}\b"
            rf"|\b(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{2,4}}\b"
            rf"|\b(?:{_MONTHS})\.?\s+{_Y}\b"
            rf"|\b\d{{1,2}}[-/. ](?:{_MONTHS})[-/. ]\d{{2,4}}\b"
        ),
    ),
    Detector(
        "mrn",
        "[MRN]",
        "medical record, patient, hospital, accession, case and insurance numbers, labelled or shaped ABC-12345",
        _rx(
            r"\b(?:MRN|MR|medical record(?: number| no\.?| #)?|patient (?:id|no\.?|number)|hospital (?:number|no\.?)|"
            r"acc(?:ession)?(?: number| no\.?)?|NHS(?: number| no\.?)?|case (?:id|no\.?|number)|"
            r"(?:member|policy|insurance|subscriber) (?:id|no\.?|number)|chart (?:id|no\.?|number)|"
            r"encounter (?:id|no\.?)|visit (?:id|no\.?)|PID|KVNR|Versichertennummer|n[º°] ?(?:de )?(?:historia|dossier))"
            r"\b\s*[:#.=-]?\s*[A-Z]*-?\d[\dA-Z./-]*(?:\s\d[\dA-Z./-]*)*\b"
            r"|\b[A-Z]{1,5}[-/]?\d{5,}[A-Z]?\b"
            r"|\b\d{5,}[-/][A-Z]{1,3}\b"
        ),
    ),
    Detector(
        "iban",
        "[ID]",
        "IBAN bank account numbers",
        _rx(r"\b[A-Z]{2}\d{2}\s?(?:[A-Z0-9]{4}\s?){2,7}[A-Z0-9]{1,4}\b", 0),
    ),
    Detector(
        "phone",
        "[PHONE]",
        "phone numbers in international form: +44 20 7946 0958, 0049 30 1234567, +1 (555) 013-3370",
        _rx(r"(?:\+|\b00)\s?\d{1,3}[\s.-]?(?:\(0\)\s?)?(?:\(?\d{1,5}\)?[\s.-]?){1,5}\d{2,5}\b"),
    ),
    Detector(
        "it_codice_fiscale",
        "[ID]",
        "Italian codice fiscale (16 characters, with omocodia letters, also spaced) and Mexican CURP",
        _rx(
            r"\b[A-Z]{3}\s?[A-Z]{3}\s?[0-9LMNPQRSTUV]{2}\s?[ABCDEHLMPRST]\s?[0-9LMNPQRSTUV]{2}\s?[A-Z]\s?[0-9LMNPQRSTUV]{3}\s?[A-Z]\b"
            r"|\b[A-Z]{4}\d{6}[HMX][A-Z]{5}[A-Z0-9]\d\b"
        ),
    ),
    Detector(
        "fr_nir",
        "[ID]",
        "French NIR / numéro de sécurité sociale (13 digits and key, Corsica 2A/2B)",
        _rx(
            r"\b[123478]\s?\d{2}\s?(?:0[1-9]|1[0-2]|[2-9]\d)\s?(?:\d{2}|2[AB])\s?\d{3}\s?\d{3}(?:\s?\d{2})?\b"
        ),
    ),
    Detector(
        "uk_nino",
        "[ID]",
        "UK National Insurance number (AB 12 34 56 C)",
        _rx(r"\b[A-CEGHJ-PR-TW-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]?\b", 0),
    ),
    Detector(
        "es_dni",
        "[ID]",
        "Spanish DNI / NIE (12345678Z, X1234567L)",
        _rx(r"\b[XYZ]?\s?-?\d{7,8}\s?-?[A-Z]\b"),
    ),
    Detector(
        "in_aadhaar",
        "[ID]",
        "Indian Aadhaar (12 digits, 4-4-4)",
        _rx(rf"(?<!\d)[2-9]\d{{3}}{_SEP}?\d{{4}}{_SEP}?\d{{4}}(?!\d)"),
    ),
    Detector(
        "de_tax_id",
        "[ID]",
        "German Steuer-IdNr (11 digits, 2-3-3-3)",
        _rx(rf"(?<!\d)\d{{2}}{_SEP}?\d{{3}}{_SEP}?\d{{3}}{_SEP}?\d{{3}}(?!\d)"),
    ),
    Detector(
        "uk_nhs",
        "[ID]",
        "UK NHS number (10 digits, 3-3-4)",
        _rx(rf"(?<!\d)\d{{3}}{_SEP}?\d{{3}}{_SEP}?\d{{4}}(?!\d)"),
    ),
    Detector(
        "us_ssn",
        "[ID]",
        "US social security number (123-45-6789, 123 45 6789, 123456789)",
        _rx(rf"(?<!\d)\d{{3}}{_SEP}?\d{{2}}{_SEP}?\d{{4}}(?!\d)"),
    ),
    Detector(
        "nl_bsn",
        "[ID]",
        "Dutch BSN (9 digits, 1234.56.789)",
        _rx(rf"(?<!\d)\d{{4}}{_SEP}?\d{{2}}{_SEP}?\d{{3}}(?!\d)"),
    ),
    Detector(
        "ca_sin",
        "[ID]",
        "Canadian SIN (9 digits, 3-3-3)",
        _rx(rf"(?<!\d)\d{{3}}{_SEP}?\d{{3}}{_SEP}?\d{{3}}(?!\d)"),
    ),
    Detector(
        "phone",
        "[PHONE]",
        "phone numbers in national form: with spaces, dots, dashes, parentheses, 7-digit local",
        _rx(
            r"(?:\(\d{2,5}\)|\b\d{2,5})[\s.-]?\d{2,4}(?:[\s.-]?\d{2,4}){1,3}\b"
            r"|\b\d{3}[\s.-]\d{4}\b"
        ),
    ),
    Detector(
        "address",
        "[ADDRESS]",
        "street addresses: number and street (12 Elm Street), street and number (Hauptstraße 5, Via Roma 10, 12 rue de la Paix), PO boxes, flats and suites",
        _rx(
            rf"(?i:\b\d{{1,4}}(?:\s?(?:bis|ter))?,?\s+(?:{_STREET_BEFORE})\s+[\w'’.-]+(?:\s+[\w'’.-]+){{0,4}})"
            rf"|\b\d{{1,6}}[A-Za-z]?(?:[-/]\d{{1,4}}[A-Za-z]?)?,?\s+(?:[A-Z0-9][\w'.-]*\s+){{0,4}}(?i:{_STREET_EN})\b\.?"
            rf"(?:,?\s+(?:[A-Z][\w'.-]*)(?:\s+[A-Z][\w'.-]*){{0,2}})?"
            rf"|(?i:\b\d{{1,6}}[a-z]?\s+(?:[a-z][\w'.-]*\s+){{0,3}}(?:street|avenue|road|lane|boulevard)\b)"
            rf"|(?i:\b(?:{_STREET_BEFORE}))\s+(?:[\w'’.-]+\s+){{0,4}}\d{{1,5}}[a-zA-Z]?\b"
            rf"|\b[A-ZÄÖÜ][\w'’-]*(?i:{_STREET_COMPOUND})\s*\d{{1,5}}[a-zA-Z]?\b"
            rf"|(?i:\b(?:P\.?\s?O\.?\s*Box|Post(?:fach| Office Box)|Apartado(?: de correos)?|Casella postale|Postbus|Boîte postale)\s*\d+)"
            rf"|\b(?:Apt|Apartment|Suite|Ste|Unit|Flat|Wohnung|Appartement|Piso)\.?\s*#?\s*\d+[A-Z]?\b",
            0,
        ),
        tail=_ADDRESS_TAIL,
    ),
    Detector(
        "postcode",
        "[POSTCODE]",
        "postcodes: US ZIP and ZIP+4, UK, Canada, Netherlands, Ireland (Eircode), Poland, Brazil, Portugal, 5-digit (DE, FR, IT, ES...)",
        _rx(
            r"\b\d{5}(?:\s?-\s?\d{4})?\b"
            r"|\b(?:GIR ?0AA|[A-PR-UWYZ](?:\d[A-HJKPSTUW\d]?|[A-HK-Y]\d[ABEHMNPRVWXY\d]?) ?\d[ABD-HJLNP-UW-Z]{2})\b"
            r"|\b[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] ?\d[ABCEGHJ-NPRSTV-Z]\d\b"
            r"|\b[1-9]\d{3} ?(?!SA|SD|SS)[A-Z]{2}\b"
            r"|\b(?:[AC-FHKNPRTV-Y]\d{2}|D6W) ?[0-9AC-FHKNPRTV-Y]{4}\b"
            r"|\b\d{2}-\d{3}\b|\b\d{4}-\d{3}\b|\b\d{5}-?\d{3}\b",
            0,
        ),
    ),
    Detector(
        "name",
        "[NAME]",
        "personal names: a title or label and a capitalised word (Dr. Okafor, name: Zed Quux), or a given name or surname from mlmon/governance/_names.py with the capitalised words and initials next to it",
        _rx(
            rf"\b(?:{_TITLES})\.?\s+{_CAPWORD}(?:\s+[A-Z]\.)*(?:\s+{_CAPWORD})?"
            rf"|(?i:\b(?:{_NAME_LABELS})\s*[:=])\s*{_CAPWORD}(?:\s+[A-Z]\.)*(?:\s+{_CAPWORD})?",
            0,
        ),
        find=_name_spans,
    ),
    Detector(
        "number",
        "[NUMBER]",
        "any other number: 5+ digits in a row, or 6+ digits in all joined by spaces or punctuation (- . / _ , : ; | * ~ # + and a closing parenthesis)",
        find=_number_spans,
    ),
)

#: Detector names, for the counts by reason.
DETECTOR_NAMES: tuple[str, ...] = tuple(dict.fromkeys(d.name for d in DETECTORS))


def _apply(text: str, skip: Collection[str]) -> tuple[str, list[str]]:
    reasons: list[str] = []
    for d in DETECTORS:
        if d.name in skip:
            continue
        spans = d.spans(text)
        if not spans:
            continue
        reasons.append(d.name)
        for s, e in reversed(_widen(text, spans)):
            text = text[:s] + d.token + text[e:]
    return text, reasons


def scan(text: str, skip: Collection[str] = ()) -> list[str]:
    """The detectors that flag ``text`` (names from :data:`DETECTOR_NAMES`), in table order.

    Examples
    --------
    >>> scan("patient lives at 12 Elm Street Springfield, SSN 123-45-6789")
    ['us_ssn', 'address']
    >>> scan("Pixel 8 Pro")
    []
    """
    return _apply(normalise_text(text), skip)[1]


def mask(text: str, skip: Collection[str] = ()) -> tuple[str, list[str]]:
    """``text`` normalised, with every detected span replaced by its detector's token.

    Returns
    -------
    (masked, reasons)
        The masked text and the names of the detectors that fired.

    Examples
    --------
    >>> mask("call +1 (555) 013-3370 or mail jane@example.org")
    ('call [PHONE] or mail [EMAIL]', ['email', 'phone'])
    """
    return _apply(normalise_text(text), skip)
