"""`LocationSpace`: where the add-on neurons of a neuron hierarchical network go."""

import math
import numbers

import numpy as np

from tfemergent.search.search_space import SearchSpace
from tfemergent.search.search_space import register_search_class
from tfemergent.utils.validation import validate_bool
from tfemergent.utils.validation import validate_float

NO_ADD_ON = -1
# The kernel sizes of `tfemergent.layers.AddOnConv2D` (repeated here so that the
# search stays TensorFlow-free at import; a test keeps the two equal).
ADD_ON_KERNEL_SIZES = (3, 5)


def _validate_sizes(name, value, *, minimum, distinct=False):
    """Return ``value`` as a non-empty tuple of ints >= ``minimum`` or raise ``ValueError``."""
    expected = f"a non-empty list of integers >= {minimum}"
    if distinct:
        expected += ", all different"
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"Argument `{name}` must be {expected}. Received: {name}={value!r}")
    for item in value:
        if (
            isinstance(item, bool)
            or not isinstance(item, (numbers.Integral, np.integer))
            or item < minimum
        ):
            raise ValueError(f"Argument `{name}` must be {expected}. Received: {name}={value!r}")
    items = tuple(int(item) for item in value)
    if distinct and len(set(items)) != len(items):
        raise ValueError(f"Argument `{name}` must be {expected}. Received: {name}={value!r}")
    return items


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


@register_search_class
class LocationSpace(SearchSpace):
    """The location genome of the add-on neurons of a neuron hierarchical network.

    The network is a chain of segments (separated by pooling layers; the paper's
    ENAS network has 3 segments of 4 convolution layers), described by
    ``segment_sizes``. Layers are numbered globally in order: layer ``j`` is
    ``layers[j] == (segment, position)``. An add-on is a sparse convolution of
    one of the ``kernel_sizes`` that feeds an existing layer (its *target*) from
    an earlier *source* of the same segment (add-ons never cross a pooling
    layer). The source of an add-on into the layer at ``position`` of its
    segment is numbered within the segment:

    - ``0``: the segment's input (the previous segment's pooling layer, or the
      network's stem for the first segment); only if
      ``include_segment_input=True``;
    - ``s`` in ``1..position``: the output of layer ``s - 1`` of the segment.

    **Genome.** One gene per (kernel size, layer), kernel-size major as in the
    paper (with ``kernel_sizes=(3, 5)`` the first ``num_layers`` genes are the
    3x3 add-ons, the last ``num_layers`` the 5x5 ones): gene
    ``k * num_layers + j`` is ``-1`` (no add-on of kernel size
    ``kernel_sizes[k]`` into layer ``j``) or the source of that add-on. So each
    layer has at most one add-on input per kernel size (the paper's restraint).
    A candidate is the genome as a list of ints; `decode` turns it into the
    readable list of add-ons ``[(target_layer, source, kernel_size), ...]``
    (sorted by target layer, then kernel size in ``kernel_sizes`` order) and
    `encode` turns such a list back into the genome.

    **Sampling** (the paper's *GenerateLoc*): each gene is ``-1`` with
    probability ``none_probability``, else a source drawn uniformly from the
    layer's valid sources (always ``-1`` for a layer without sources).
    `recombine` is the uniform crossover used by `EvolutionarySearch`: each
    gene of the child comes from either parent with probability 1/2. The parts
    of the space (``num_parts``) are the genes; `neighbour` changes one gene to
    another of its values, drawn uniformly (for local searches such as
    `HillClimbing`). `possible_add_ons` lists every add-on of the space: the
    weights of the super-network that all candidates share.

    The paper counts ``(4!)^3 * (4!)^3 ~= 1.9e8`` candidates for 3 segments of
    4 layers and 2 kernel sizes while saying it includes the pooling layer as a
    source; the count only matches without it (``include_segment_input=False``:
    a layer at position ``i`` has ``i`` sources, so ``i + 1`` gene values). The
    default includes it, as the text says.

    Reference: "Neuron Hierarchical Networks", Section 2.3 (location-direction
    search) and Section 3 (genes: -1 with probability 0.8, else uniform).

    Args:
        segment_sizes: non-empty list of ints >= 1, the number of layers that
            can receive add-ons in each segment (the paper: ``(4, 4, 4)``).
        kernel_sizes: non-empty list of distinct kernel sizes of the add-ons,
            each 3 or 5 (those of `tfemergent.layers.AddOnConv2D`; the paper:
            ``(3, 5)``).
        none_probability: float in ``[0, 1]``, the probability that a sampled
            gene is ``-1`` (the paper: 0.8).
        include_segment_input: bool, whether the segment's input (source 0) can
            feed an add-on.

    Attributes:
        layers: tuple of ``(segment, position)``, one per layer.
        num_layers: int, the number of layers.
        num_genes: int, ``len(kernel_sizes) * num_layers`` (also ``num_parts``).
        num_candidates: int, the number of distinct genomes.

    Example:

    >>> import numpy as np
    >>> from tfemergent.search import LocationSpace
    >>> space = LocationSpace(segment_sizes=(2, 3), kernel_sizes=(3, 5))
    >>> space.layers
    ((0, 0), (0, 1), (1, 0), (1, 1), (1, 2))
    >>> space.num_genes
    10
    >>> genome = [-1, 1, -1, -1, 2] + [0, -1, -1, 0, -1]  # 3x3 genes, then 5x5 genes
    >>> space.decode(genome)
    [(0, 0, 5), (1, 1, 3), (3, 0, 5), (4, 2, 3)]
    >>> space.encode(space.decode(genome)) == genome
    True
    >>> candidate = space.sample(np.random.default_rng(0))
    >>> space.validate(candidate) == candidate
    True
    >>> space.validate([-1, 2, -1, -1, -1, -1, -1, -1, -1, -1])
    Traceback (most recent call last):
    ...
    ValueError: candidate[1] (... into layer 1 = segment 0, position 1) must be -1 (none) or a
    source in [0, 1]. Received: candidate[1]=2
    >>> LocationSpace(include_segment_input=False).num_candidates  # the paper's (4!)^6
    191102976
    """

    def __init__(
        self,
        segment_sizes=(4, 4, 4),
        kernel_sizes=(3, 5),
        none_probability=0.8,
        include_segment_input=True,
    ):
        self.segment_sizes = _validate_sizes("segment_sizes", segment_sizes, minimum=1)
        self.kernel_sizes = _validate_sizes("kernel_sizes", kernel_sizes, minimum=1, distinct=True)
        unsupported = [size for size in self.kernel_sizes if size not in ADD_ON_KERNEL_SIZES]
        if unsupported:
            raise ValueError(
                "Argument `kernel_sizes` must hold kernel sizes of the add-on neurons, "
                f"{list(ADD_ON_KERNEL_SIZES)} (those of `tfemergent.layers.AddOnConv2D`, so "
                f"that the models can build every candidate). Received: "
                f"kernel_sizes={kernel_sizes!r}"
            )
        self.none_probability = validate_float(
            "none_probability", none_probability, minimum=0.0, maximum=1.0
        )
        self.include_segment_input = validate_bool("include_segment_input", include_segment_input)
        self.layers = tuple(
            (segment, position)
            for segment, size in enumerate(self.segment_sizes)
            for position in range(size)
        )
        self._first_source = 0 if self.include_segment_input else 1
        positions = np.array([position for _, position in self.layers], dtype=np.int64)
        # Per gene: the number of valid sources (the sources are first_source..position).
        self._num_sources = np.tile(positions + 1 - self._first_source, len(self.kernel_sizes))

    # ------------------------------------------------------------------ geometry

    @property
    def num_layers(self):
        return len(self.layers)

    @property
    def num_genes(self):
        return len(self.kernel_sizes) * self.num_layers

    @property
    def num_parts(self):
        return self.num_genes

    @property
    def num_candidates(self):
        return math.prod(int(count) + 1 for count in self._num_sources)

    def _sources(self, target_layer):
        return range(self._first_source, self.layers[target_layer][1] + 1)

    def _describe_gene(self, gene):
        kernel_index, target_layer = divmod(gene, self.num_layers)
        segment, position = self.layers[target_layer]
        return (
            f"an add-on of kernel size {self.kernel_sizes[kernel_index]} into layer "
            f"{target_layer} = segment {segment}, position {position}"
        )

    def _allowed(self, gene):
        sources = self._sources(gene % self.num_layers)
        if not sources:
            return "-1 (this layer has no source)"
        return f"-1 (none) or a source in [{sources.start}, {sources.stop - 1}]"

    def possible_add_ons(self):
        """Every add-on ``(target_layer, source, kernel_size)`` of the space, in `decode` order.

        These are the weights of the super-network shared by all candidates.
        """
        return [
            (target_layer, source, kernel_size)
            for target_layer in range(self.num_layers)
            for kernel_size in self.kernel_sizes
            for source in self._sources(target_layer)
        ]

    # ------------------------------------------------------------ search space

    def sample(self, rng):
        none = rng.random(self.num_genes) < self.none_probability
        offsets = rng.integers(0, np.maximum(self._num_sources, 1))
        genome = np.where(
            none | (self._num_sources == 0), NO_ADD_ON, self._first_source + offsets
        )
        return [int(gene) for gene in genome]

    def neighbour(self, candidate, part, rng):
        candidate = self.validate(candidate)
        values = [NO_ADD_ON, *self._sources(part % self.num_layers)]
        values.remove(candidate[part])
        if not values:
            raise ValueError(
                f"Gene {part} ({self._describe_gene(part)}) has a single value, -1, so it has "
                f"no neighbour; change another part. Received: part={part}"
            )
        candidate[part] = values[int(rng.integers(len(values)))]
        return candidate

    def recombine(self, first, second, rng):
        """Uniform crossover: each gene from ``first`` or ``second`` with probability 1/2."""
        first, second = self.validate(first), self.validate(second)
        from_first = rng.random(self.num_genes) < 0.5
        return [a if take else b for a, b, take in zip(first, second, from_first)]

    def validate(self, candidate):
        candidate = super().validate(candidate)
        if not isinstance(candidate, list) or len(candidate) != self.num_genes:
            raise ValueError(
                f"A LocationSpace candidate is a list of num_genes={self.num_genes} ints "
                f"({len(self.kernel_sizes)} kernel sizes x {self.num_layers} layers). "
                f"Received: candidate={candidate!r}"
            )
        for gene, value in enumerate(candidate):
            valid = _is_int(value) and (
                value == NO_ADD_ON or value in self._sources(gene % self.num_layers)
            )
            if not valid:
                raise ValueError(
                    f"candidate[{gene}] ({self._describe_gene(gene)}) must be "
                    f"{self._allowed(gene)}. Received: candidate[{gene}]={value!r}"
                )
        return candidate

    # ------------------------------------------------------------- genome codec

    def encode(self, add_ons):
        """Return the genome of a list of add-ons ``[(target_layer, source, kernel_size), ...]``.

        The order of the add-ons does not matter; a layer takes at most one
        add-on per kernel size.
        """
        expected = (
            "a list of (target_layer, source, kernel_size) triples with target_layer in "
            f"[0, {self.num_layers - 1}], kernel_size in {list(self.kernel_sizes)} and a "
            "valid source of that layer, at most one per (target_layer, kernel_size)"
        )
        if isinstance(add_ons, np.ndarray):
            add_ons = add_ons.tolist()
        if not isinstance(add_ons, (list, tuple)):
            raise ValueError(f"`encode` expects {expected}. Received: add_ons={add_ons!r}")
        genome = [NO_ADD_ON] * self.num_genes
        for add_on in add_ons:
            if (
                not isinstance(add_on, (list, tuple))
                or len(add_on) != 3
                or not all(isinstance(v, (numbers.Integral, np.integer)) for v in add_on)
                or any(isinstance(v, bool) for v in add_on)
            ):
                raise ValueError(f"`encode` expects {expected}. Received: add_on={add_on!r}")
            target_layer, source, kernel_size = (int(v) for v in add_on)
            if not 0 <= target_layer < self.num_layers or kernel_size not in self.kernel_sizes:
                raise ValueError(f"`encode` expects {expected}. Received: add_on={add_on!r}")
            if source not in self._sources(target_layer):
                gene = self.kernel_sizes.index(kernel_size) * self.num_layers + target_layer
                raise ValueError(
                    f"The source of {self._describe_gene(gene)} must be in "
                    f"{list(self._sources(target_layer))} (0 = the segment input, s >= 1 = "
                    f"layer s - 1 of the segment). Received: add_on={add_on!r}"
                )
            gene = self.kernel_sizes.index(kernel_size) * self.num_layers + target_layer
            if genome[gene] != NO_ADD_ON:
                raise ValueError(
                    f"Layer {target_layer} takes at most one add-on of kernel size "
                    f"{kernel_size}; `encode` got two. Received: add_ons={add_ons!r}"
                )
            genome[gene] = source
        return genome

    def decode(self, genome):
        """Return the add-ons ``[(target_layer, source, kernel_size), ...]`` of a genome.

        Sorted by target layer, then by kernel size in ``kernel_sizes`` order.
        """
        genome = self.validate(genome)
        add_ons = []
        for target_layer in range(self.num_layers):
            for kernel_index, kernel_size in enumerate(self.kernel_sizes):
                source = genome[kernel_index * self.num_layers + target_layer]
                if source != NO_ADD_ON:
                    add_ons.append((target_layer, source, kernel_size))
        return add_ons

    def get_config(self):
        return {
            "segment_sizes": list(self.segment_sizes),
            "kernel_sizes": list(self.kernel_sizes),
            "none_probability": self.none_probability,
            "include_segment_input": self.include_segment_input,
        }
