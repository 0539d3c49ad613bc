"""Small convolution stacks of a served image model run as matrix products.

A convolution (or transposed convolution) whose input size is fixed is a linear map from the
flattened input to the flattened output: one matrix and a bias. For the small layers near a
generator's latent end that matrix is small, and one matrix product (`addmm`) runs far faster
than the convolution: torch's convolution pays for im2col/col2im or oneDNN's set-up on every
call, which for a 2x2 or 4x4 input is most of its time. Measured on CPU (AMD EPYC, 1 thread),
the 8x8 DCGAN generator's forward: batch 1 154 -> 42 us, batch 32 602 -> 178 us.

`lower_for_serving(model)` runs the model's `render` once with hooks on its `nn.Sequential`
stacks, learns each stack's input shape, and replaces a stack whose leading layers qualify by
a `DenseStack`: those layers as matrix products (an eval-mode BatchNorm after a convolution
folded into its matrix; pointwise activations kept), then the stack's remaining layers as they
were. A convolution qualifies when its matrix has at most `MAX_ELEMENTS` entries and its
product costs at most `MAX_WORK` times the convolution's multiply-adds, or the matrix is tiny
(`TINY` entries): a large image's later layers stay convolutions. The arithmetic is the same
but in another order: images differ from the convolution's by float rounding (a pixel level at
most, in under 1% of pixels, as batch sizes already differ; tested).

Only for serving: the model is changed in place, its lowered layers hold no trainable weights
and refuse to run in training mode; the stored model and checkpoints are not touched.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

MAX_ELEMENTS = 1 << 20           # a lowered layer's matrix: at most 4 MiB of float32
MAX_WORK = 2                     # its multiply-adds at most 2x the convolution's,
TINY = 1 << 16                   # unless the matrix is this small anyway
CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
POINTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.GELU, nn.SiLU, nn.Identity, nn.Dropout)


def _conv_matrix(conv: nn.Module, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]] | None:
    """(matrix (in, out), bias (out,), output shape) of `conv` on inputs of `shape` (C, H, W),
    or None when it does not qualify."""
    if not isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) or conv.groups != 1 or conv.padding_mode != "zeros":
        return None
    if not isinstance(conv.padding, tuple) or len(shape) != 3:      # padding="same"/"valid" strings
        return None
    transposed = isinstance(conv, nn.ConvTranspose2d)
    weight = conv.weight.detach()
    n_in = math.prod(shape)
    if n_in * n_in > 4 * MAX_ELEMENTS:           # the identity basis fed through it below
        return None
    with torch.no_grad():
        probe = torch.zeros(1, *shape, dtype=weight.dtype, device=weight.device)
        out_shape = tuple(conv(probe).shape[1:])
    n_out = math.prod(out_shape)
    spatial = shape[1] * shape[2] if transposed else out_shape[1] * out_shape[2]
    conv_work = weight.numel() * spatial
    if n_in * n_out > MAX_ELEMENTS or (n_in * n_out > MAX_WORK * conv_work and n_in * n_out > TINY):
        return None
    basis = torch.eye(n_in, dtype=weight.dtype, device=weight.device).reshape(n_in, *shape)
    with torch.no_grad():
        if transposed:
            columns = F.conv_transpose2d(basis, weight, None, conv.stride, conv.padding, conv.output_padding,
                                         conv.groups, conv.dilation)
        else:
            columns = F.conv2d(basis, weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    matrix = columns.reshape(n_in, n_out)
    plane = out_shape[1] * out_shape[2]
    bias = (conv.bias.detach().repeat_interleave(plane) if conv.bias is not None
            else torch.zeros(n_out, dtype=weight.dtype, device=weight.device))
    return matrix.contiguous(), bias.contiguous(), out_shape


def _fold_batch_norm(bn: nn.Module, matrix: torch.Tensor, bias: torch.Tensor, shape: tuple[int, ...]):
    """An eval-mode BatchNorm2d after a lowered layer of output `shape`, folded into it."""
    if not isinstance(bn, nn.BatchNorm2d) or not bn.track_running_stats or bn.running_mean is None:
        return None
    with torch.no_grad():
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.affine:
            scale = scale * bn.weight
        shift = -bn.running_mean * scale + (bn.bias if bn.affine else 0.0)
        plane = shape[1] * shape[2]
        scale, shift = scale.repeat_interleave(plane), shift.repeat_interleave(plane)
        return matrix * scale, bias * scale + shift


class DenseStack(nn.Module):
    """A Sequential's leading layers as matrix products on the flattened input, then its other
    layers as they were."""

    def __init__(self, steps: list, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                 rest: list[nn.Module], lowered: int):
        super().__init__()
        self.in_shape, self.out_shape, self.lowered = tuple(in_shape), out_shape, lowered
        self.pointwise = nn.ModuleList([s for s in steps if isinstance(s, nn.Module)])
        # indexed per step (ModuleList's own indexing is slower); fixed at construction, like the steps
        self._pointwise = tuple(self.pointwise)
        self.rest = nn.Sequential(*rest)
        # ("matmul", (its bias's and matrix's buffer names)) or ("pointwise", its module's index)
        self._steps: list[tuple[str, object]] = []
        for i, step in enumerate(steps):
            if isinstance(step, nn.Module):
                self._steps.append(("pointwise", sum(kind == "pointwise" for kind, _ in self._steps)))
            else:
                matrix, bias = step
                self.register_buffer(f"matrix{i}", matrix)
                self.register_buffer(f"bias{i}", bias)
                self._steps.append(("matmul", (f"bias{i}", f"matrix{i}")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise RuntimeError("DenseStack is the serving form of a convolution stack: it cannot be trained; "
                               "train the model as stored (components/serving/lowering.py).")
        if x.shape[1:] != self.in_shape:                 # its matrices hold this one input size
            raise ValueError(f"DenseStack: lowered for inputs of shape {self.in_shape}, got {tuple(x.shape[1:])}; "
                             f"serve this model with serving.lower_convs: 0.")
        h = x.reshape(x.shape[0], -1)
        buffers = self._buffers           # read directly: Module.__getattr__ per step cost ~1 us each
        for kind, at in self._steps:
            if kind == "matmul":
                h = torch.addmm(buffers[at[0]], h, buffers[at[1]])
            else:
                h = self._pointwise[at](h)
        h = h.reshape(h.shape[0], *self.out_shape) if len(self.out_shape) > 1 else h
        return self.rest(h) if len(self.rest) else h


def lower_stack(stack: nn.Sequential, shape: tuple[int, ...]) -> DenseStack | None:
    """`stack` (run on inputs of `shape`, no batch dimension) as a DenseStack, or None when its
    first layer does not qualify."""
    layers, steps, i, current = list(stack), [], 0, tuple(shape)
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, POINTWISE) and steps:
            steps.append(layer)
        elif isinstance(layer, nn.Flatten) and steps and layer.start_dim == 1 and layer.end_dim == -1:
            current = (math.prod(current),)
        else:
            got = _conv_matrix(layer, current) if len(current) == 3 else None
            if got is None:
                break
            matrix, bias, current = got
            if i + 1 < len(layers) and (folded := _fold_batch_norm(layers[i + 1], matrix, bias, current)):
                matrix, bias = folded
                i += 1
            steps.append((matrix, bias))
        i += 1
    lowered = sum(1 for s in steps if not isinstance(s, nn.Module))
    if not lowered:
        return None
    return DenseStack(steps, shape, current, layers[i:], lowered)


def lower_for_serving(model) -> int:
    """Lower the `nn.Sequential` stacks `model.render` runs (see the module's docstring), in
    place; returns how many convolutions now run as matrix products (0: none qualified).
    A stack is left as it was when the traced render ran it at more than one input shape or
    with a submodule in training mode (its BatchNorm statistics would not be what it uses).
    The module tree is walked children first, so a stack inside another is lowered (and put in
    its live parent) before its parent is; a stack held in two places is lowered once."""
    shapes: dict[int, set[tuple[int, ...]]] = {}
    training: set[int] = set()

    def record(module, args) -> None:            # a pre-hook returning something would replace the input
        shapes.setdefault(id(module), set()).add(tuple(args[0].shape[1:]))
        if any(sub.training for sub in module.modules()):
            training.add(id(module))

    roots = list(model.modules().values())
    stacks = {id(m): m for root in roots for m in root.modules() if isinstance(m, nn.Sequential)}
    _render_once(model, 2, [stack.register_forward_pre_hook(record) for stack in stacks.values()])

    done: dict[int, nn.Module | None] = {}       # a module seen -> its DenseStack (None: kept)
    count = 0

    def walk(parent: nn.Module) -> None:
        nonlocal count
        for name, child in list(parent.named_children()):
            key = id(child)
            if key not in done:
                walk(child)
                dense = None
                if key in stacks and len(shapes.get(key, ())) == 1 and key not in training:
                    dense = lower_stack(child, next(iter(shapes[key])))
                    if dense is not None:
                        dense.eval()
                        count += dense.lowered
                done[key] = dense
            if done[key] is not None:
                setattr(parent, name, done[key])

    for root in roots:
        walk(root)
    return count


def convolutions_rendering(model) -> int:
    """How many convolution layers `model.render` runs (after lowering: those left)."""
    ran: set[int] = set()
    _render_once(model, 1, [sub.register_forward_pre_hook(lambda module, args: ran.add(id(module)))
                            for root in model.modules().values() for sub in root.modules()
                            if isinstance(sub, CONVOLUTIONS)])
    return len(ran)


def _render_once(model, rows: int, hooks: list) -> None:
    """One `model.render` of `rows` rows with `hooks` registered; removed whatever happens."""
    try:
        z, labels = model.latents(rows, 0)
        model.render(z, labels)
    finally:
        for hook in hooks:
            hook.remove()
