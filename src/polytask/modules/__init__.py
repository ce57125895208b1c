"""Reusable layers: embeddings, encoders, pooling, heads, gradient reversal."""
from .embeddings import WordEmbedding
from .encoders import CNNEncoder, LSTMEncoder, TransformerEncoder, build_encoder
from .gradient_reversal import GradientReversal
from .heads import ClassificationHead, PairClassificationHead, build_head
from .pooling import Pooling
from .sentence import SentenceEncoder

__all__ = ["WordEmbedding", "LSTMEncoder", "CNNEncoder", "TransformerEncoder", "build_encoder",
           "GradientReversal", "ClassificationHead", "PairClassificationHead", "build_head",
           "Pooling", "SentenceEncoder"]
