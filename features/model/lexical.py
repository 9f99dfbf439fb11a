"""Feature building shared by training and serving: TF-IDF words and one-hot metadata beside the embedding."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import OneHotEncoder

from features.text.privacy import mask_credentials

CHAR_SOURCE = "chars"
_SEP = "\x1f"


def _field_value(field: str, value: object) -> str:
    """One-hot column name that splits back into (field, value) even when either holds '_'."""
    return f"{field}{_SEP}{value}"


class LexicalFeatures(TransformerMixin, BaseEstimator):
    """TF-IDF words (and character n-grams) of the cleaned text plus one-hot metadata, with feature names."""

    def __init__(
        self,
        metadata: tuple[str, ...] = (),
        max_terms: int = 20_000,
        use_text: bool = True,
        char_ngrams: bool = False,
        max_char_terms: int = 100_000,
    ):
        self.metadata = metadata
        self.max_terms = max_terms
        self.use_text = use_text
        self.char_ngrams = char_ngrams
        self.max_char_terms = max_char_terms

    def fit(self, X: pd.DataFrame, y: object = None) -> LexicalFeatures:
        self.fit_transform(X)
        return self

    def fit_transform(self, X: pd.DataFrame, y: object = None, **_: object) -> sp.csr_matrix:
        """Fit and transform in one pass over the texts (the analysers are most of the cost)."""
        self.__dict__.pop("_counters", None)  # those of vectorizers fitted before
        texts = _texts(X)
        self.text_ = (
            TfidfVectorizer(
                ngram_range=(1, 2),
                min_df=2,
                max_features=self.max_terms,
                sublinear_tf=True,
                strip_accents="unicode",
                token_pattern=r"(?u)\b\w[\w\-\.]*\w\b|\b\w\b",
            )
            if self.use_text
            else None
        )
        # Host names, job names and error codes are split oddly by word tokens; character n-grams keep them.
        self.chars_ = (
            TfidfVectorizer(
                analyzer="char_wb", ngram_range=(2, 5), min_df=2, max_features=self.max_char_terms, sublinear_tf=True
            )
            if self.char_ngrams
            else None
        )
        self.meta_ = (
            OneHotEncoder(handle_unknown="ignore", min_frequency=2, feature_name_combiner=_field_value)
            if self.metadata
            else None
        )
        blocks = [v.fit_transform(texts) for v in (self.text_, self.chars_) if v is not None]
        if self.meta_ is not None:
            blocks.append(self.meta_.fit_transform(self._meta(X)))
        names: list[tuple[str, str]] = []
        if self.text_ is not None:
            names += [("text", t) for t in self.text_.get_feature_names_out()]
        if self.chars_ is not None:
            names += [(CHAR_SOURCE, t) for t in self.chars_.get_feature_names_out()]
        if self.meta_ is not None:
            for name in self.meta_.get_feature_names_out(list(self.metadata)):
                field, _, value = str(name).partition(_SEP)
                value = "(rare value)" if value == "infrequent_sklearn" else value
                names.append((field, value))
        self.names_ = names
        return _stacked(blocks, len(X))

    @property
    def n_words(self) -> int:
        """Word columns come first in `transform`'s output; 0 without word features."""
        return len(self.text_.vocabulary_) if self.text_ is not None else 0

    def words(self, X: pd.DataFrame) -> sp.csr_matrix | None:
        """Only the word columns of `transform` (what the similar-ticket re-ranking reads); None without them."""
        return self._tfidf(self.text_, _texts(X)) if self.text_ is not None else None

    def _meta(self, X: pd.DataFrame) -> np.ndarray:
        cols = [X[c].to_numpy(dtype=str) if c in X.columns else np.full(len(X), "", dtype=str) for c in self.metadata]
        return np.column_stack(cols).astype(object)

    def transform(self, X: pd.DataFrame) -> sp.csr_matrix:
        blocks = []
        texts = _texts(X) if self.text_ is not None or self.chars_ is not None else []
        if self.text_ is not None:
            blocks.append(self._tfidf(self.text_, texts))
        if self.chars_ is not None:
            blocks.append(self._tfidf(self.chars_, texts))
        if self.meta_ is not None:
            blocks.append(self.meta_.transform(self._meta(X)))
        return _stacked(blocks, len(X))

    def _tfidf(self, vectorizer: TfidfVectorizer, texts: list[str]) -> sp.csr_matrix:
        """`vectorizer.transform(texts)`, the same matrix, without scikit-learn's general path around it (input
        checks, dtype and dataframe detection on every call: most of a single ticket's time, where the counting is
        little). Its counter (`_counter`) is built once per loaded model. A vectorizer configured otherwise than
        this module fits them goes through scikit-learn."""
        options = (vectorizer.norm, vectorizer.use_idf, vectorizer.binary, vectorizer.dtype)
        if options != ("l2", True, False, np.float64):
            return sp.csr_matrix(vectorizer.transform(texts))
        counters = self.__dict__.setdefault("_counters", {})
        count = counters.get(id(vectorizer))
        if count is None:
            count = counters[id(vectorizer)] = _counter(vectorizer)
        vocabulary, indptr, indices, counts = vectorizer.vocabulary_, [0], [], []
        for text in texts:
            found = count(text)
            columns = sorted(found)
            indices += columns
            counts += [found[j] for j in columns]
            indptr.append(len(indices))
        index = np.int32 if len(indices) < 2**31 else np.int64  # as scipy would choose
        data = np.asarray(counts, dtype=np.float64)
        cols = np.asarray(indices, dtype=index)
        if vectorizer.sublinear_tf:
            data = np.log(data) + 1.0
        data *= vectorizer.idf_[cols]
        rows = np.repeat(np.arange(len(texts)), np.diff(indptr))
        norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=len(texts)))
        data /= np.where(norms > 0, norms, 1.0)[rows]
        shape = (len(texts), len(vocabulary))
        return sp.csr_matrix((data, cols, np.asarray(indptr, dtype=index)), shape=shape)

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("_counters", None)  # built again on first use
        return state


WORD_CACHE = 20_000  # words whose character n-gram columns a loaded model remembers (then it starts again)
CACHED_WORD_CHARS = 40  # longer words are counted each time


def _counter(vectorizer: TfidfVectorizer) -> Callable[[str], dict[int, int]]:
    """A text's term counts by vocabulary column, as `vectorizer` analyses it. Character n-grams within words
    (`char_wb`) are counted word by word with scikit-learn's own n-gram function, each word's columns remembered:
    a ticket's words are mostly words seen before, and its n-grams are the concatenation of its words' n-grams."""
    vocabulary = vectorizer.vocabulary_
    ngrams, spaces = getattr(vectorizer, "_char_wb_ngrams", None), getattr(vectorizer, "_white_spaces", None)
    if vectorizer.analyzer != "char_wb" or vectorizer.input != "content" or ngrams is None or spaces is None:
        analyse = vectorizer.build_analyzer()

        def by_token(text: str) -> dict[int, int]:
            found: dict[int, int] = {}
            for token in analyse(text):
                j = vocabulary.get(token)
                if j is not None:
                    found[j] = found.get(j, 0) + 1
            return found

        return by_token
    preprocess = vectorizer.build_preprocessor()
    known: dict[str, tuple[int, ...]] = {}

    def by_word(text: str) -> dict[int, int]:
        found: dict[int, int] = {}
        for word in spaces.sub(" ", preprocess(vectorizer.decode(text))).split():
            columns = known.get(word)
            if columns is None:
                columns = tuple(j for g in ngrams(word) if (j := vocabulary.get(g)) is not None)
                if len(word) <= CACHED_WORD_CHARS:  # a pasted token or log line is not kept
                    if len(known) >= WORD_CACHE:
                        known.clear()
                    known[word] = columns
            for j in columns:
                found[j] = found.get(j, 0) + 1
        return found

    return by_word


def _texts(X: pd.DataFrame) -> list[str]:
    """The texts the vocabularies see: credentials masked, so no password or token becomes a feature (and a key
    term shown to agents) or is stored in the model's vocabulary."""
    return [mask_credentials(t) for t in X["text"].to_numpy(dtype=str)]


def _stacked(blocks: list[sp.spmatrix], rows: int) -> sp.csr_matrix:
    if not blocks:
        return sp.csr_matrix((rows, 0), dtype=np.float64)
    return sp.hstack(blocks, format="csr")


def combine(lexical: sp.csr_matrix, embeddings: np.ndarray, embedding_weight: float) -> sp.csr_matrix:
    """One matrix for the heads: lexical columns first (their indices name words), then the embedding."""
    dense = sp.csr_matrix(embeddings.astype(np.float64) * embedding_weight)
    return sp.hstack([lexical, dense], format="csr")
