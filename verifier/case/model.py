"""The case model: frozen, typed, validated objects. Nothing past the loader sees raw YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from ..dtypes import FLOATS, UNIT_ROUNDOFF, smallest_normal, smallest_subnormal
from ..language.nodes import Node
from ..language.shapes import Shape

COMPILE_BACKENDS = ("auto", "inductor", "aot_eager", "eager")
DIAGNOSES = ("accumulated", "missing_zero_grad", "mutated_state", "grad_output_modified", "ignores_grad_output", "region",
             "kink", "factor", "relative", "sign", "zero", "none", "nonfinite", "transpose",
             "conjugate",
             "shape", "partial", "inaccurate", "saturated", "stale_input",
             "any")
DTYPES = FLOATS
REFERENCES = ("auto", "expand", "vectorised", "matrix")


@dataclass(frozen=True)
class Tolerance:
    """Allowed error: |got - exact| <= atol + rtol * |exact| (+ the rounding bound of the computation, per element).

    derived: the dtype's default, where the reference derives a per-element bound (the running error of the
    forward computation and of the chain rule, :mod:`verifier.reference.chainbound`): atol is then only the dtype's
    smallest normal number (a value is never accepted because it is small), rtol the accuracy of one library function.
    A tolerance written in a case or passed to the helper is taken as it stands (derived False)."""

    rtol: float
    atol: float
    derived: bool = False

    def allowed(self, magnitude: Any, slack: Any = 0.0) -> Any:
        """The one tolerance rule: the error allowed at an exact value of this magnitude (scalars or arrays)."""
        return self.atol + self.rtol * magnitude + slack

    def floor(self, dtype: str) -> Tolerance:
        """The derived form: atol down to the dtype's smallest normal number (the bound carries the rest)."""
        return Tolerance(self.rtol, smallest_normal(dtype), derived=True)


# The fixed table (large-tensor references, which bound rounding norm-wise): float64 is tight enough to catch a
# relative error of 1e-10 in a well-conditioned gradient; float32 allows the few-ulp errors of a correct float32
# implementation. Where the reference derives a per-element bound (derived=True), atol drops to the smallest normal.
DEFAULT_TOLERANCES: Mapping[str, Tolerance] = MappingProxyType({
    "float64": Tolerance(rtol=1e-11, atol=1e-13, derived=True),
    "float32": Tolerance(rtol=2e-5, atol=1e-6, derived=True),
    # float16 and bfloat16: one rounding of the result, and the subnormal floor; the rounding the computation itself
    # does is bounded per element by the reference (verifier.rounding) and added to these
    "float16": Tolerance(rtol=UNIT_ROUNDOFF["float16"], atol=16 * smallest_subnormal("float16")),
    "bfloat16": Tolerance(rtol=UNIT_ROUNDOFF["bfloat16"], atol=16 * smallest_subnormal("bfloat16")),
})


@dataclass(frozen=True)
class Input:
    """A leaf tensor of the case."""

    name: str
    value: np.ndarray = field(compare=False, repr=False)  # float64, the case's own value
    requires_grad: bool = True
    line: int | None = None
    integer: bool = False  # class labels, indices: an int64 tensor on the torch side (never differentiated)
    draw: Any = None  # a case.draws.Draw: the value comes from the case's torch generator (a NaN placeholder here)

    @property
    def shape(self) -> Shape:
        return tuple(self.value.shape)


@dataclass(frozen=True)
class Define:
    """A named intermediate: a node of the torch graph."""

    name: str
    node: Node
    text: str
    line: int | None = None


@dataclass(frozen=True)
class Expect:
    """Hand-derived values ("the manual gradient") to check three ways."""

    value: np.ndarray | Node | None = None  # a Node is a hand-derived formula in the case language
    grad: Mapping[str, np.ndarray | Node] = field(default_factory=dict)
    vjp: Mapping[str, np.ndarray | Node] = field(default_factory=dict)
    accumulate: Mapping[str, tuple[np.ndarray, ...]] = field(default_factory=dict)
    higher: Mapping[int, np.ndarray | Node] = field(default_factory=dict)
    graph: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.value is not None or any((self.grad, self.vjp, self.accumulate, self.higher, self.graph))


@dataclass(frozen=True)
class Case:
    """One verified function: the definition, its inputs and points, and what to check."""

    name: str
    function: Node
    function_text: str
    inputs: tuple[Input, ...]
    defines: tuple[Define, ...] = ()
    description: str = ""
    dtype: str = "float64"
    checks: tuple[str, ...] = ()
    expect: Expect = field(default_factory=Expect)
    tolerance: Tolerance | None = None
    points: tuple[Mapping[str, np.ndarray], ...] = field(default=(), compare=False, repr=False)
    order: int = 2
    grad_output: np.ndarray | None = field(default=None, compare=False, repr=False)
    retain_grad: tuple[str, ...] = ()
    backward_calls: int = 1
    zero_grad: bool = True
    accumulate_calls: int = 4
    strict: bool = False
    reference: str = "auto"  # auto | expand | vectorised | matrix
    seed: int = 0
    file: str | None = None
    line: int | None = None
    shapes: Mapping[str, Shape] = field(default_factory=dict, compare=False)
    output_shape: Shape = ()
    tags: tuple[str, ...] = ()
    impl: str | None = None  # "package.module:attr": the code verified instead of the lowered definition
    impl_args: tuple[Any, ...] = ()
    impl_kwargs: Mapping[str, Any] = field(default_factory=dict)
    module_params: Mapping[str, str] = field(default_factory=dict)  # module parameter name -> input name
    expect_failure: str | None = None  # a diagnosis kind (or "any") this deliberately broken case must produce
    train: Any = None  # a TrainSpec, for the train check
    torch_seed: int | None = None  # torch.manual_seed of the inputs drawn by torch (Input.draw), in their order
    domain: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    picture: Mapping[str, Any] = field(default_factory=dict)  # what `gradverify plot` draws for a train case
    family: str | None = None  # the case a dtype list expanded this one from (cases of one family share points)
    auto_points: bool = False  # points: auto (the default of conformance cases): add the points that expose bugs
    op: str | None = None  # the torch op a conformance case verifies: mismatches are findings or classified edges
    sweep: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # `gradverify sweep`'s domain per input
    device: str = "cpu"  # where the torch side runs (cpu, cuda, cuda:N); the reference is the same everywhere
    compile: str | None = None  # a torch.compile backend (auto: inductor where a C++ compiler exists, else aot_eager)
    # complex inputs (stored as real pairs, shape + (2,), like torch.view_as_real); complex_output: so is the output
    complex_inputs: tuple[str, ...] = ()
    complex_output: bool = False
    # users' code with no written definition: the function is the impl's forward, to be traced at each point (runner);
    # once traced, derived_from names the traced code (and traced is False)
    traced: bool = False
    derived_from: str | None = None
    # gradient_of: the function is the surrogate whose derivatives the backward is meant to return; the value the
    # forward returns is value_function (written, or traced)
    surrogate: bool = False
    value_function: Node | None = None

    def nodes(self) -> list[Node]:
        """Every node of the definition: the defines' and the function's."""
        from ..language.nodes import walk

        return [n for node in [d.node for d in self.defines] + [self.function] for n in walk(node)]

    @property
    def differentiable(self) -> tuple[Input, ...]:
        return tuple(i for i in self.inputs if i.requires_grad)

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.file and self.line else (self.file or "<memory>")

    def tolerance_for(self, dtype: str) -> Tolerance:
        """The case's tolerance in its own dtype; run in another (--dtype), the looser of it and that dtype's table
        (a tolerance written for float64 says nothing about float32 rounding)."""
        default = DEFAULT_TOLERANCES[dtype]
        if self.tolerance is None:
            return default
        if dtype == self.dtype:
            return self.tolerance
        return Tolerance(max(self.tolerance.rtol, default.rtol), max(self.tolerance.atol, default.atol))

    def with_dtype(self, dtype: str) -> Case:
        from dataclasses import replace

        return replace(self, dtype=dtype)


MAX_ORDER = 6
