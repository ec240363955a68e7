"""Coarse genres from Echo Nest artist terms: the one place the MSD taxonomy is defined.

MSD files carry no genre; every track carries its artist's Echo Nest terms, ranked by weight
(``hip hop`` 1.0, ``gangster rap`` 0.93, ``los angeles`` 0.8 ...). A track's genre is that of
the highest-weighted term that names one, so a place (``los angeles``), a voice
(``female vocalist``) or a use (``soundtrack``) is passed over for the next term.

A term names a genre by these rules, applied in order:

1. ``EXACT``: whole terms whose words would mislead (``trip hop`` is electronic, not hip hop;
   ``lovers rock`` is reggae; ``western swing`` is country), and terms that name no genre
   (``None``: ``comedy``, ``soundtrack``, ``meditation``).
2. ``KEYWORDS``: otherwise the term's words are matched against each genre's keywords, and
   when several match, the *last* one wins: a compound genre's head word is its last
   (``blues-rock`` is rock, ``country blues`` is blues, ``latin jazz`` is jazz, ``pop punk``
   is punk, ``rap metal`` is metal). On equal ends the longer keyword wins (``hip hop``
   beats ``hop``-like fragments).
3. Otherwise the term names no genre.

Terms are compared lower-cased, with ``-``, ``_`` and ``/`` read as spaces and ``'`` dropped
(``rock 'n roll`` is ``rock n roll``). The genres follow the top level of the AllMusic and
tagtraum taxonomies, folded into 15 classes; ``world`` holds non-Western and national
traditions without a class of their own (``chanson``, ``soukous``, ``bhangra``).

Example::

    >>> term_genre("blues-rock"), term_genre("country blues"), term_genre("trip hop")
    ('rock', 'blues', 'electronic')
    >>> genre_from_terms(["los angeles", "gangster rap", "rock"], [1.0, 0.9, 0.5])
    'hiphop'
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np

GENRES = (
    "blues",
    "classical",
    "country",
    "electronic",
    "folk",
    "hiphop",
    "jazz",
    "latin",
    "metal",
    "pop",
    "punk",
    "reggae",
    "rnb",
    "rock",
    "world",
)

# fmt: off
KEYWORDS: dict[str, tuple[str, ...]] = {
    "blues": ("blues", "boogie woogie"),
    "classical": (
        "classical", "opera", "orchestra", "orchestral", "symphony", "symphonic", "baroque",
        "chamber music", "concerto", "sonata", "requiem", "early music", "ballet",
        "serialism", "neoclassical", "bel canto", "choral", "chorus", "chant", "romantic era",
        "overture", "string quartet",
    ),
    "country": (
        "country", "honky tonk", "bluegrass", "americana", "cowboy", "nashville sound",
    ),
    "electronic": (
        "electronic", "electronica", "electro", "techno", "house", "trance", "dubstep",
        "drum and bass", "jungle", "breakbeat", "breakcore", "downtempo", "chill out",
        "ambient", "idm", "garage", "hardstyle", "gabba", "gabber", "dance", "disco",
        "glitch", "8 bit", "chiptune", "industrial", "synth", "edm", "eurodance", "speedcore",
        "electroclash", "dubtronica", "indietronica", "folktronica", "bass music", "club",
        "illbient",
    ),
    "folk": (
        "folk", "celtic", "irish", "traditional", "neofolk", "filk", "jug band", "polka",
        "humppa", "zydeco", "cajun", "sea shanty",
    ),
    "hiphop": (
        "hip hop", "hiphop", "rap", "hyphy", "crunk", "grime", "turntablism", "turnablism",
        "dirty south", "g funk", "trap", "hip pop", "miami bass",
    ),
    "jazz": (
        "jazz", "bebop", "bop", "big band", "swing", "fusion", "ragtime", "dixieland",
        "free improvisation", "manouche",
    ),
    "latin": (
        "latin", "salsa", "samba", "bossa nova", "tango", "flamenco", "bulerias", "cumbia",
        "reggaeton", "merengue", "bachata", "mambo", "rumba", "bolero", "ranchera",
        "mariachi", "banda", "tejano", "vallenato", "charanga", "gaita", "boogaloo", "choro",
        "frevo", "batucada", "mexico", "brazil", "brazilian", "spanish",
    ),
    "metal": (
        "metal", "grindcore", "goregrind", "deathcore", "death core", "mathcore", "math core",
        "thrash", "rapcore", "doom", "metalcore",
    ),
    "pop": (
        "pop", "ccm", "teen pop", "boy band", "bubblegum", "europop", "easy listening",
        "new romantic", "synthpop", "electropop", "christian music", "lounge", "exotica",
    ),
    "punk": (
        "punk", "hardcore", "oi", "emo", "screamo", "straight edge", "riot grrrl",
        "queercore", "power violence", "protopunk",
    ),
    "reggae": ("reggae", "dancehall", "dub", "ska", "rock steady", "ragga", "lovers rock"),
    "rnb": (
        "r&b", "rnb", "rhythm and blues", "soul", "funk", "motown", "doo wop", "new jack swing",
        "quiet storm", "gospel", "rare groove", "urban", "contemporary r&b",
    ),
    "rock": (
        "rock", "grunge", "rockabilly", "psychobilly", "rock n roll", "new wave",
        "british invasion", "merseybeat", "freakbeat", "shoegaze", "glam", "sadcore", "slow core",
        "slowcore", "lo fi", "jam band", "surf", "alternative", "indie", "no wave", "deathrock",
        "visual kei", "krautrock", "neue deutsche welle", "psychedelic", "progressive",
    ),
    "world": (
        "world", "soukous", "bhangra", "zouk", "zouklove", "afrobeat", "highlife", "qawwali",
        "klezmer", "rebetika", "chalga", "congo", "marrabenta", "kizomba", "desi", "kirtan",
        "island music", "slack key guitar", "musette", "chanson", "greek", "chinese",
        "cantonese", "mandarin", "japanese", "balkan", "arabesque", "ethnic", "marimba",
        "calypso", "african", "indian", "gypsy",
    ),
}

EXACT: dict[str, str | None] = {
    # words that would mislead
    "trip hop": "electronic", "lovers rock": "reggae", "western swing": "country",
    "jazz funk": "jazz", "southern gospel": "country", "country gospel": "country",
    "rhythm and blues": "rnb", "new jack swing": "rnb", "happy hardcore": "electronic",
    "digital hardcore": "electronic", "hardcore techno": "electronic", "new beat": "electronic",
    "big beat": "electronic", "broken beat": "electronic", "ghetto tech": "electronic",
    "space music": "electronic", "dark wave": "electronic", "darkwave": "electronic",
    "power electronics": "electronic", "world beat": "world", "world fusion": "world",
    "celtic fusion": "folk", "gypsy jazz": "jazz", "ragga jungle": "electronic",
    "jungle music": "electronic", "christian rock": "rock", "hip house": "electronic",
    "thrash core": "punk", "thrashcore": "punk", "space age pop": "pop", "singer songwriter": None,
    "chanson francaise": "world", "comedy rock": "rock", "comedy rap": "hiphop",
    "outlaw country": "country", "alternative country": "country", "alt country": "country",
    "dance music": "electronic", "jazz rap": "hiphop", "rap rock": "rock",
    "gothic rock": "rock", "beat": "rock", "goa": "electronic",
    # terms that name no genre: places, voices, uses, moods, eras
    "ballad": None, "vocal": None, "female vocalist": None, "male vocalist": None,
    "soundtrack": None, "ost": None, "video game music": None, "comedy": None,
    "stand up comedy": None, "parody": None, "funny": None, "lullaby": None, "patriotic": None,
    "new age": None, "meditation": None, "oldies": None, "guitar": None, "guitarist": None,
    "piano": None, "instrumental": None, "cabaret": None, "vaudeville": None,
    "show tunes": None, "musical": None, "christmas": None, "game": None, "dj": None,
    "all female": None, "close harmony": None, "sxsw 2007": None, "mondiovision": None,
    "religious music": None, "children": None, "spoken word": None, "humorous": None,
    "los angeles": None, "california": None, "melbourne": None, "united states": None,
    "massachusetts": None, "swedish": None, "german": None, "canadian": None, "swiss": None,
    "finish": None, "american": None, "british": None, "uk": None, "usa": None,
    "00s": None, "90s": None, "80s": None, "70s": None, "60s": None, "50s": None,
}
# fmt: on

_SEPARATORS = re.compile(r"[-_/]+")
_SPACES = re.compile(r"\s+")
_KEYWORD_WORDS = {
    genre: tuple(tuple(k.split()) for k in words) for genre, words in KEYWORDS.items()
}


def normalise_term(term: str) -> str:
    """Lower case, ``-``/``_``/``/`` as spaces, apostrophes dropped, spaces collapsed."""
    text = _SEPARATORS.sub(" ", term.lower().replace("'", "").replace("\u2019", ""))
    return _SPACES.sub(" ", text).strip()


@functools.cache  # pure, and tracks share their terms: ~80 us per matching term otherwise
def term_genre(term: str) -> str | None:
    """The coarse genre one term names, or None (see the module docstring for the rules)."""
    text = normalise_term(term)
    if text in EXACT:
        return EXACT[text]
    words = text.split()
    best: tuple[int, int, str] | None = None  # (end, length, genre): later end, then longer
    for genre, keywords in _KEYWORD_WORDS.items():
        for keyword in keywords:
            n = len(keyword)
            for start in range(len(words) - n + 1):
                if tuple(words[start : start + n]) == keyword:
                    candidate = (start + n, n, genre)
                    if best is None or candidate[:2] > best[:2]:
                        best = candidate
    return best[2] if best else None


def ranked_terms(
    terms: Sequence[str], weights: Sequence[float], freqs: Sequence[float] | None = None
) -> list[str]:
    """Terms by weight, then frequency, highest first; equal ones keep their file order."""
    weights = np.asarray(weights, dtype=float)
    keys = [np.arange(len(terms))]
    if freqs is not None:
        keys.append(-np.asarray(freqs, dtype=float))
    keys.append(-weights)
    return [terms[i] for i in np.lexsort(keys)]


def genre_from_terms(
    terms: Sequence[str], weights: Sequence[float], freqs: Sequence[float] | None = None
) -> str | None:
    """The genre of the highest-ranked term that names one; None when no term does."""
    return genre_from_ranked(ranked_terms(terms, weights, freqs))


def genre_from_ranked(terms: Sequence[str]) -> str | None:
    """The genre of the first of ``terms`` (already ranked) that names one, or None."""
    return next((g for g in map(term_genre, terms) if g is not None), None)
