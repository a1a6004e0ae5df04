"""Recommender data: implicit ratings, a social graph and item content (bag of words).

A :class:`RecsysData` holds ``n_users`` users and ``n_items`` items, the observed (positive)
user–item pairs ``ratings`` as an ``(nnz, 2)`` int64 tensor (every pair not listed is an
unobserved 0), the directed social edges ``social`` as an ``(E, 2)`` int64 tensor of
``(user, friend)`` pairs, and the item content ``content``: a sparse COO ``(n_items, n_words)``
float tensor of word counts.  Nothing is ever stored as a dense users × items matrix.

:func:`recsys` reads the usual files (CSV of ``user,item`` pairs; CSV edge list; content as a
``.npz`` count matrix, a dense ``.npy`` array or a CSV ``item,text`` column turned into word
counts); bad content raises :class:`.errors.DataError` naming the file, column and row.
:func:`recsys_synthetic` draws data from the BDCMF model's own assumptions (Xiao et al. 2019,
REFERENCE §4) and keeps the planted factors in ``truth``; :func:`split_ratings` holds out
ratings for in-matrix evaluation and whole items for cold-start evaluation.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..utils.validation import check_int, check_number, check_probability
from .csvtable import read_table
from .errors import DataError, Location, show

__all__ = ["RecsysData", "RecsysSplit", "recsys", "recsys_synthetic", "split_ratings", "content_counts"]

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass
class RecsysData:
    """Implicit-feedback recommender data (see the module docstring).

    ``truth`` (synthetic data only) maps ``"u"``, ``"v"``, ``"z"``, ``"g"`` to the planted
    factors and ``"word_loadings"`` to the decoder's matrix; ``vocabulary`` names the content
    columns when the content came from text.
    """

    n_users: int
    n_items: int
    ratings: Tensor
    social: Tensor | None = None
    content: Tensor | None = None
    vocabulary: list[str] | None = None
    truth: dict | None = field(default=None, repr=False)

    @property
    def n_words(self) -> int:
        return 0 if self.content is None else int(self.content.shape[1])

    def __post_init__(self):
        check_pairs("ratings", self.ratings, self.n_users, self.n_items)
        if self.social is not None:
            check_pairs("social", self.social, self.n_users, self.n_users)
        if self.content is not None:
            if self.content.ndim != 2 or self.content.shape[0] != self.n_items:
                raise DataError(Location(argument="content"), f"content has shape {tuple(self.content.shape)}; "
                                                              f"expected (n_items={self.n_items}, n_words)")
            if not self.content.is_sparse:
                self.content = self.content.to_sparse()
            self.content = self.content.coalesce()


@dataclass
class RecsysSplit:
    """Ratings split for evaluation.

    ``train`` holds the warm items only (re-indexed ``0..len(warm_items)-1``, in the order of
    ``warm_items``, global item indices); ``test`` holds held-out pairs of warm items (in the
    training item indexing); ``cold_items`` (global indices) are items whose every rating is
    held out, with their content in ``cold_content`` and their pairs in ``cold_test`` (item
    index local to ``cold_items``).
    """

    train: RecsysData
    test: Tensor
    warm_items: Tensor
    cold_items: Tensor
    cold_test: Tensor
    cold_content: Tensor | None


def check_pairs(name: str, pairs: Tensor, n_rows: int, n_cols: int) -> None:
    """Raise :class:`DataError` unless ``pairs`` is an ``(n, 2)`` integer tensor of in-range, distinct pairs."""
    if not isinstance(pairs, Tensor) or pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.is_floating_point():
        raise DataError(Location(argument=name), f"{name} must be an (n, 2) integer tensor of pairs, got "
                                                 f"{getattr(pairs, 'shape', type(pairs).__name__)}")
    for col, n in ((0, n_rows), (1, n_cols)):
        bad = torch.nonzero((pairs[:, col] < 0) | (pairs[:, col] >= n)).flatten()
        if bad.numel():
            i = int(bad[0])
            raise DataError(Location(argument=name, index=(i, col)), f"id {int(pairs[i, col])} is out of range; "
                                                                     f"expected an integer in [0, {n})")
    key = pairs[:, 0] * n_cols + pairs[:, 1]
    uniq, inverse, counts = torch.unique(key, return_inverse=True, return_counts=True)
    if uniq.numel() != key.numel():
        dup = int(torch.nonzero(counts[inverse] > 1).flatten()[0])
        raise DataError(Location(argument=name, index=(dup,)), f"pair {tuple(pairs[dup].tolist())} appears more "
                                                               "than once; expected distinct pairs")


# --------------------------------------------------------------------------- file loading
def _read_pairs(path, columns: tuple[str, str], n_rows: int | None, n_cols: int | None, what: str,
                delimiter: str) -> tuple[np.ndarray, int, int]:
    table = read_table(Path(path), delimiter)
    for c in columns:
        if c not in table.header:
            raise DataError(str(path), f"no column {c!r}; expected the {what} file to have columns {list(columns)} "
                                       f"(it has {table.header})")
    cols = []
    for c, n in zip(columns, (n_rows, n_cols)):
        values = table.numbers(c, hint="; expected integer ids starting at 0")
        if values.dtype.kind != "i":
            bad = int(np.flatnonzero(values != np.round(values))[0]) if np.any(values != np.round(values)) else 0
            raise DataError(table.where(c, bad), f"{show(table.cells(c)[bad])} is not an integer id; expected "
                                                 "integer ids starting at 0", table.cells(c)[bad])
        neg = np.flatnonzero(values < 0)
        if neg.size:
            i = int(neg[0])
            raise DataError(table.where(c, i), f"id {int(values[i])} is negative; expected ids >= 0", int(values[i]))
        if n is not None:
            over = np.flatnonzero(values >= n)
            if over.size:
                i = int(over[0])
                raise DataError(table.where(c, i), f"id {int(values[i])} is out of range; expected ids in "
                                                   f"[0, {n})", int(values[i]))
        cols.append(values)
    pairs = np.stack(cols, axis=1).astype(np.int64)
    n_r = n_rows if n_rows is not None else int(pairs[:, 0].max()) + 1
    n_c = n_cols if n_cols is not None else int(pairs[:, 1].max()) + 1
    key = pairs[:, 0] * n_c + pairs[:, 1]
    _, first, counts = np.unique(key, return_index=True, return_inverse=False, return_counts=True)
    if np.any(counts > 1):
        k = key[first[np.flatnonzero(counts > 1)[0]]]
        rows = np.flatnonzero(key == k)
        raise DataError(table.where(columns[0], int(rows[1])),
                        f"pair ({int(pairs[rows[1], 0])}, {int(pairs[rows[1], 1])}) repeats data row {int(rows[0]) + 1}; "
                        f"expected each {what} pair once", tuple(int(v) for v in pairs[rows[1]]))
    return pairs, n_r, n_c


def content_counts(texts: list[str], max_words: int | None = None) -> tuple[Tensor, list[str]]:
    """Word counts of ``texts``: lower-cased runs of letters and digits, the vocabulary sorted by
    decreasing frequency (ties alphabetically), cut to the ``max_words`` most frequent words.
    Returns a sparse COO float ``(len(texts), V)`` tensor and the vocabulary."""
    docs = [_TOKEN.findall(t.lower()) for t in texts]
    freq = Counter(w for d in docs for w in d)
    vocab = [w for w, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))]
    if max_words is not None:
        vocab = vocab[: check_int("max_words", max_words)]
    index = {w: i for i, w in enumerate(vocab)}
    rows, cols, vals = [], [], []
    for r, d in enumerate(docs):
        for w, c in Counter(d).items():
            if w in index:
                rows.append(r)
                cols.append(index[w])
                vals.append(float(c))
    idx = torch.tensor([rows, cols], dtype=torch.int64).reshape(2, -1)
    x = torch.sparse_coo_tensor(idx, torch.tensor(vals, dtype=torch.float32), (len(texts), len(vocab)), check_invariants=True)
    return x.coalesce(), vocab


def _check_counts(x: np.ndarray, where: str, key: str | None) -> None:
    bad = np.flatnonzero(~np.isfinite(x) | (x < 0) | (x != np.round(x)))
    if bad.size:
        pos = np.unravel_index(int(bad[0]), x.shape) if x.ndim > 1 else (int(bad[0]),)
        raise DataError(Location(path=where, key=key, index=tuple(int(p) for p in pos)),
                        f"{show(x.flat[int(bad[0])])} is not a word count; expected non-negative whole numbers",
                        x.flat[int(bad[0])])


def _read_content(path, n_items: int, text_column: str, item_column: str, max_words: int | None,
                  delimiter: str) -> tuple[Tensor, list[str] | None]:
    path = Path(path)
    if path.suffix == ".npy":
        x = np.load(path, allow_pickle=False)
        if x.ndim != 2 or x.dtype.kind not in "biuf":
            raise DataError(str(path), f"array of shape {x.shape} and dtype {x.dtype}; expected a numeric "
                                       "(n_items, n_words) count matrix")
        _check_counts(x, str(path), None)
        dense = torch.as_tensor(x.astype(np.float32))
        out, vocab = dense.to_sparse().coalesce(), None
    elif path.suffix == ".npz":
        import scipy.sparse as sp

        try:
            m = sp.load_npz(path).tocoo()
        except (ValueError, KeyError, OSError) as exc:
            raise DataError(str(path), f"not a scipy sparse .npz file ({exc}); expected a matrix saved by "
                                       "scipy.sparse.save_npz") from None
        _check_counts(m.data, str(path), "data")
        idx = torch.as_tensor(np.stack([m.row, m.col]).astype(np.int64))
        out = torch.sparse_coo_tensor(idx, torch.as_tensor(m.data.astype(np.float32)), m.shape, check_invariants=True).coalesce()
        vocab = None
    else:
        table = read_table(path, delimiter)
        for c in (item_column, text_column):
            if c not in table.header:
                raise DataError(str(path), f"no column {c!r}; expected content columns {[item_column, text_column]} "
                                           f"(it has {table.header})")
        items = table.numbers(item_column, hint="; expected integer item ids starting at 0")
        texts = table.cells(text_column)
        order = np.full(n_items, -1)
        for r, it in enumerate(items.tolist()):
            if not float(it).is_integer() or not 0 <= it < n_items:
                raise DataError(table.where(item_column, r), f"item id {show(it)} out of range; expected an integer "
                                                             f"in [0, {n_items})", it)
            if order[int(it)] >= 0:
                raise DataError(table.where(item_column, r), f"item {int(it)} repeats data row {order[int(it)] + 1}; "
                                                             "expected one text per item", int(it))
            order[int(it)] = r
        missing = np.flatnonzero(order < 0)
        if missing.size:
            raise DataError(str(path), f"no text for item {int(missing[0])} ({missing.size} items missing); expected "
                                       "one row per item")
        out, vocab = content_counts([texts[i] for i in order], max_words)
    if out.shape[0] != n_items:
        raise DataError(str(path), f"content has {out.shape[0]} rows; expected one per item (n_items={n_items})")
    return out, vocab


def recsys(ratings: str | os.PathLike, social: str | os.PathLike | None = None,
           content: str | os.PathLike | None = None, *, n_users: int | None = None, n_items: int | None = None,
           user_column: str = "user", item_column: str = "item", friend_column: str = "friend",
           text_column: str = "text", max_words: int | None = None, delimiter: str = ",") -> RecsysData:
    """Load implicit ratings, an optional social graph and optional item content.

    ``ratings``: a CSV with integer columns ``user_column``, ``item_column`` (ids from 0), one
    row per observed pair.  ``social``: a CSV edge list with columns ``user_column``,
    ``friend_column`` (directed edges; list both directions for a symmetric graph).
    ``content``: ``.npz`` (a scipy sparse count matrix), ``.npy`` (a dense count array), or a CSV
    with columns ``item_column`` and ``text_column`` whose texts become word counts
    (:func:`content_counts`).  ``n_users``/``n_items`` default to the largest id + 1.

    Raises:
        DataError: a non-integer or out-of-range id, a repeated pair, an empty graph, content that
            is not non-negative whole-number counts, content rows that do not match the items —
            each naming the file, column and row.
        FileNotFoundError: a file is missing.
    """
    for name, p in (("ratings", ratings), ("social", social), ("content", content)):
        if p is not None and not Path(p).is_file():
            raise FileNotFoundError(f"{name} file not found: {p}")
    pairs, nu, ni = _read_pairs(ratings, (user_column, item_column), n_users, n_items, "ratings", delimiter)
    edges = None
    if social is not None:
        try:
            e, _, _ = _read_pairs(social, (user_column, friend_column), nu, nu, "social", delimiter)
        except DataError as exc:
            if "no data rows" in str(exc):
                raise DataError(str(social), "the social graph has no edges; expected at least one edge (or pass "
                                             "social=None)") from None
            raise
        edges = torch.as_tensor(e)
    x, vocab = (None, None) if content is None else _read_content(content, ni, text_column, item_column, max_words,
                                                                  delimiter)
    return RecsysData(nu, ni, torch.as_tensor(pairs), edges, x, vocab)


# --------------------------------------------------------------------------- synthetic data
def _top_pairs(a: Tensor, b: Tensor, density: float, noise: float, gen: torch.Generator, exclude_diagonal=False,
               chunk: int = 512) -> Tensor:
    """Pairs (i, j) whose noisy score a_iᵀb_j + noise·ε exceeds the (1 − density) quantile, found
    chunk by chunk (the threshold comes from a random sample of scores)."""
    n, m = a.shape[0], b.shape[0]
    si = torch.randint(n, (200_000,), generator=gen)
    sj = torch.randint(m, (200_000,), generator=gen)
    sample = (a[si] * b[sj]).sum(-1) + noise * torch.randn(200_000, generator=gen)
    threshold = torch.quantile(sample, 1.0 - density)
    out = []
    for start in range(0, n, chunk):
        s = a[start:start + chunk] @ b.T
        s = s + noise * torch.randn(s.shape, generator=gen)
        if exclude_diagonal:
            rows = torch.arange(start, min(start + chunk, n))
            s[rows - start, rows] = -math.inf
        hit = torch.nonzero(s > threshold)
        hit[:, 0] += start
        out.append(hit)
    return torch.cat(out)


def recsys_synthetic(n_users: int, n_items: int, n_words: int, K: int, seed: int = 0, *, density: float = 0.01,
                     social_density: float = 0.005, doc_length: int = 100, lambda_u: float = 1.0,
                     lambda_g: float = 1.0, lambda_v: float = 10.0, rating_noise: float = 0.5,
                     word_scale: float = 1.0) -> RecsysData:
    """Data drawn from the BDCMF model's assumptions (Xiao et al. 2019; REFERENCE §4).

    .. math::

        u_i \\sim N(0, λ_u^{-1} I),\\; g_k \\sim N(0, λ_g^{-1} I),\\; z_j \\sim N(0, I),\\;
        v_j = z_j + ε_j,\\; ε_j \\sim N(0, λ_v^{-1} I),\\;
        x_j \\sim \\mathrm{Mult}(L, \\mathrm{softmax}(W z_j + b))

    Implicit feedback: ``R_ij = 1`` where ``u_iᵀv_j + rating_noise·std·η`` (η standard normal,
    std the spread of ``u_iᵀv_j``) exceeds its ``1 − density`` quantile, i.e. the observed items
    are the highest latent ratings of the Gaussian ``R_ij ~ N(u_iᵀv_j, ·)``; ``S_ik = 1`` likewise
    from ``u_iᵀg_k`` with ``social_density``.  ``W`` has ``N(0, word_scale²)`` entries and ``b``
    is a Zipf-like background.  Everything is drawn from a private generator seeded by ``seed``
    (the global RNGs are untouched).  ``truth`` holds ``u, g, z, v, word_loadings``.
    """
    n_users, n_items, n_words, K = (check_int(k, v) for k, v in (("n_users", n_users), ("n_items", n_items),
                                                                   ("n_words", n_words), ("K", K)))
    density = check_probability("density", density, open_ends=True)
    social_density = check_probability("social_density", social_density, open_ends=True)
    doc_length = check_int("doc_length", doc_length)
    for k, v in (("lambda_u", lambda_u), ("lambda_g", lambda_g), ("lambda_v", lambda_v)):
        check_number(k, v, lo=0.0, lo_open=True)
    check_number("rating_noise", rating_noise, lo=0.0)
    check_number("word_scale", word_scale, lo=0.0)
    gen = torch.Generator().manual_seed(int(seed))
    u = torch.randn(n_users, K, generator=gen) / math.sqrt(lambda_u)
    g = torch.randn(n_users, K, generator=gen) / math.sqrt(lambda_g)
    z = torch.randn(n_items, K, generator=gen)
    v = z + torch.randn(n_items, K, generator=gen) / math.sqrt(lambda_v)
    spread_r = math.sqrt(K / lambda_u * (1 + 1 / lambda_v))
    spread_s = math.sqrt(K / (lambda_u * lambda_g))
    ratings = _top_pairs(u, v, density, rating_noise * spread_r, gen)
    social = _top_pairs(u, g, social_density, rating_noise * spread_s, gen, exclude_diagonal=True)
    w = word_scale * torch.randn(n_words, K, generator=gen) / math.sqrt(K)
    b = -torch.log(torch.arange(1, n_words + 1, dtype=torch.float32))
    probs = torch.softmax(z @ w.T + b, dim=-1)
    rows, cols, vals = [], [], []
    for start in range(0, n_items, 1024):
        draws = torch.multinomial(probs[start:start + 1024], doc_length, replacement=True, generator=gen)
        counts = torch.zeros(draws.shape[0], n_words).scatter_add_(1, draws, torch.ones_like(draws, dtype=torch.float))
        nz = torch.nonzero(counts)
        rows.append(nz[:, 0] + start)
        cols.append(nz[:, 1])
        vals.append(counts[nz[:, 0], nz[:, 1]])
    x = torch.sparse_coo_tensor(torch.stack([torch.cat(rows), torch.cat(cols)]), torch.cat(vals),
                                (n_items, n_words), check_invariants=False).coalesce()
    truth = {"u": u, "g": g, "z": z, "v": v, "word_loadings": w}
    return RecsysData(n_users, n_items, ratings, social, x, None, truth)


# --------------------------------------------------------------------------- splitting
def split_ratings(data: RecsysData, test_fraction: float = 0.2, cold_fraction: float = 0.1,
                  seed: int = 0) -> RecsysSplit:
    """Hold out ``cold_fraction`` of the items entirely (cold start) and ``test_fraction`` of the
    remaining pairs (in-matrix), drawn with a private generator seeded by ``seed``."""
    check_probability("test_fraction", test_fraction)
    check_number("cold_fraction", cold_fraction, 0.0, 1.0, hi_open=True)
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(data.n_items, generator=gen)
    n_cold = int(round(cold_fraction * data.n_items))
    cold, warm = perm[:n_cold].sort().values, perm[n_cold:].sort().values
    local = torch.full((data.n_items,), -1, dtype=torch.int64)
    local[warm] = torch.arange(warm.numel())
    local_cold = torch.full((data.n_items,), -1, dtype=torch.int64)
    local_cold[cold] = torch.arange(cold.numel())
    r = data.ratings
    is_cold = local_cold[r[:, 1]] >= 0
    cold_test = torch.stack([r[is_cold, 0], local_cold[r[is_cold, 1]]], 1)
    warm_pairs = torch.stack([r[~is_cold, 0], local[r[~is_cold, 1]]], 1)
    held = torch.rand(warm_pairs.shape[0], generator=gen) < test_fraction
    content = data.content
    warm_content = cold_content = None
    if content is not None:
        warm_content = content.index_select(0, warm).coalesce()
        cold_content = content.index_select(0, cold).coalesce()
    train = replace(data, n_items=int(warm.numel()), ratings=warm_pairs[~held], content=warm_content, truth=None)
    return RecsysSplit(train, warm_pairs[held], warm, cold, cold_test, cold_content)
