"""Feature building shared by training and serving: TF-IDF words and one-hot metadata beside the embedding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import OneHotEncoder


class LexicalFeatures(TransformerMixin, BaseEstimator):
    """TF-IDF over the cleaned text plus one-hot metadata fields, with readable feature names."""

    def __init__(self, metadata: tuple[str, ...] = (), max_terms: int = 20_000, use_text: bool = True):
        self.metadata = metadata
        self.max_terms = max_terms
        self.use_text = use_text

    def fit(self, X: pd.DataFrame, y: object = None) -> LexicalFeatures:
        self.text_ = (
            TfidfVectorizer(
                ngram_range=(1, 2),
                min_df=2,
                max_features=self.max_terms,
                sublinear_tf=True,
                strip_accents="unicode",
                token_pattern=r"(?u)\b\w[\w\-\.]*\w\b|\b\w\b",
            ).fit(X["text"].to_numpy(dtype=str))
            if self.use_text
            else None
        )
        self.meta_ = OneHotEncoder(handle_unknown="ignore").fit(self._meta(X)) if self.metadata else None
        names: list[tuple[str, str]] = []
        if self.text_ is not None:
            names += [("text", t) for t in self.text_.get_feature_names_out()]
        if self.meta_ is not None:
            for field, cats in zip(self.metadata, self.meta_.categories_, strict=True):
                names += [(field, str(c)) for c in cats]
        self.names_ = names
        return self

    def _meta(self, X: pd.DataFrame) -> np.ndarray:
        cols = [X[c].to_numpy(dtype=str) if c in X.columns else np.full(len(X), "", dtype=str) for c in self.metadata]
        return np.column_stack(cols).astype(object)

    def transform(self, X: pd.DataFrame) -> sp.csr_matrix:
        blocks = []
        if self.text_ is not None:
            blocks.append(self.text_.transform(X["text"].to_numpy(dtype=str)))
        if self.meta_ is not None:
            blocks.append(self.meta_.transform(self._meta(X)))
        if not blocks:
            return sp.csr_matrix((len(X), 0), dtype=np.float64)
        return sp.hstack(blocks, format="csr")


def combine(lexical: sp.csr_matrix, embeddings: np.ndarray, embedding_weight: float) -> sp.csr_matrix:
    """One matrix for the heads: lexical columns first (their indices name words), then the embedding."""
    dense = sp.csr_matrix(embeddings.astype(np.float64) * embedding_weight)
    return sp.hstack([lexical, dense], format="csr")
