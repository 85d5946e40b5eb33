"""BERTopic's default clustering on given embeddings, for bench/intents.rs.

BERTopic() builds UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine",
low_memory=False) and HDBSCAN(min_cluster_size=10, metric="euclidean",
cluster_selection_method="eom", prediction_data=True); with precomputed embeddings its topics
are exactly HDBSCAN's labels on the UMAP output, so umap-learn + hdbscan reproduce them without
BERTopic's own dependencies (sentence-transformers, torch).

usage: intents_reference.py <sample.f32> <dim> <labels.i32 out>; prints "seconds <s>".
"""
import sys
import time

import numpy as np

path, dim, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
x = np.fromfile(path, dtype=np.float32).reshape(-1, dim)
import hdbscan  # noqa: E402  (imports are not timed, the fit is)
import umap  # noqa: E402

started = time.time()
reduced = umap.UMAP(
    n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", low_memory=False
).fit_transform(x)
labels = hdbscan.HDBSCAN(
    min_cluster_size=10, metric="euclidean", cluster_selection_method="eom", prediction_data=True
).fit(reduced).labels_
print(f"seconds {time.time() - started:.2f}")
labels.astype("<i4").tofile(out)
