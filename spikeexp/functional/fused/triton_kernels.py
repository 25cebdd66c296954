r"""Triton kernels of the fused operators (launched by :mod:`spikeexp.functional.fused.gpu`).

Imported only when a kernel is launched (``triton`` is needed then, never to import spikeexp).

Feed-forward kernels (LIF, LSNN, LI): one program per block of ``BLOCK`` neurons keeps the
state and the parameters of its neurons in registers over all ``T`` steps; per step it reads
the input row and writes the spikes and what backward needs (the pre-reset voltage ``u``, for
LSNN also the threshold distance ``d``, with parameter gradients the synaptic current ``j``).
Backward kernels walk time in reverse with the surrogate derivative evaluated inline
(:func:`surrogate`) and reduce the parameter gradients over time per neuron in registers.
Inputs and output gradients with time stride 0 are read from their one row. Each program
walks time with 64-bit row offsets (the launcher passes the last row's offset: no 32-bit
overflow on long sequences) and loads the next step's input while the current one computes.

Recurrent kernels: for hidden sizes up to ``PERSISTENT_MAX_HIDDEN`` one program per batch row
holds the recurrent weights in registers for all steps (:func:`recurrent_forward_kernel`);
above, the launcher runs one cuBLAS product per step and :func:`recurrent_step_kernel`.

Arithmetic follows the step functions of :mod:`spikeexp.functional.neurons` operation by
operation (launched with ``enable_fp_fusion=False``: no fused multiply-add), and every reset is
the product :math:`(1 - z) u + z v_{reset}` as there: an infinite voltage becomes NaN and a NaN
gradient stays NaN, exactly as in the reference loop. The state is float32 for float32 and
bfloat16 inputs, float64 for float64 (the dtype of the state arrays); loads convert, stores
convert to the output's dtype.
"""

import triton
import triton.language as tl

# Surrogate code -1 (``GIVEN`` of spikeexp.functional.fused.gpu): the derivative was computed in
# PyTorch and is read from the gradient array; the other codes are evaluated by `surrogate`.

HALF_PI = tl.constexpr(1.5707963267948966)
INV_SQRT_PI = tl.constexpr(0.5641895835477563)


@triton.jit
def surrogate(x, alpha, METHOD: tl.constexpr):
    r""":math:`\sigma'(x)` of the surrogate ``METHOD`` (0 super, 1 sigmoid, 2 fast_sigmoid,
    3 triangle, 4 arctan, 5 tanh, 6 erfc, 7 straight_through: the formulas of
    :mod:`spikeexp.functional.surrogate`); NaN stays NaN (no max/min that would drop it)."""
    ax = alpha * tl.abs(x)
    if METHOD == 0:  # 1 / (alpha |x| + 1)^2
        s = ax + 1.0
        out = 1.0 / (s * s)
    elif METHOD == 1:  # alpha s (1 - s), s = sigmoid(alpha x)
        s = 1.0 / (1.0 + tl.exp(-(alpha * x)))
        out = alpha * s * (1.0 - s)
    elif METHOD == 2:  # alpha / (2 (1 + alpha |x|)^2)
        s = 1.0 + ax
        out = alpha / (2.0 * (s * s))
    elif METHOD == 3:  # alpha max(0, 1 - alpha |x|)
        c = 1.0 - ax
        out = alpha * tl.where(c < 0.0, 0.0, c)
    elif METHOD == 4:  # alpha / (2 (1 + (pi/2 alpha x)^2))
        y = HALF_PI * alpha * x
        out = alpha / (2.0 * (1.0 + y * y))
    elif METHOD == 5:  # alpha/2 (1 - tanh^2(alpha x)); |tanh y| = (1 - e) / (1 + e), e = exp(-2|y|)
        e = tl.exp(-2.0 * ax)
        t = (1.0 - e) / (1.0 + e)
        out = 0.5 * alpha * (1.0 - t * t)
    elif METHOD == 6:  # alpha / sqrt(pi) exp(-(alpha x)^2)
        y = alpha * x
        out = alpha * INV_SQRT_PI * tl.exp(-(y * y))
    else:  # straight through: 1
        out = tl.full(x.shape, 1.0, x.dtype)
    return out


@triton.jit
def _spike(distance):
    """Heaviside with H(0) = 0 (NaN: 0), in the distance's dtype."""
    return tl.where(distance > 0.0, 1.0, 0.0).to(distance.dtype)


@triton.jit
def _sum(x, axis: tl.constexpr):
    """Sum along ``axis``: what ``tl.sum`` does for floats, written with ``tl.reduce``. The
    kernels call no function of ``triton.language``'s standard library (``tl.sum``,
    ``tl.zeros`` ...): those are bound to the compiler when Triton is imported, and the
    interpreted copy of this module (:mod:`spikeexp.functional.fused.gpu`) cannot call them.
    Its combine function is passed, not called, which the interpreter also evaluates with one
    NumPy sum."""
    return tl.reduce(x, axis, tl.standard._sum_combine)


@triton.jit
def _block(m, BLOCK: tl.constexpr):
    """Neuron indices of this program (int64) and their mask."""
    k = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    return k, k < m


@triton.jit
def _integrate(current, v, i, a, b, vl):
    """The synapse and membrane of one Euler step (``lif_step``'s first three lines):
    (current after the input ``j``, pre-reset voltage ``u``, synaptic current after decay)."""
    j = i + current
    u = v + a * ((vl - v) + j)
    return j, u, j - b * j


@triton.jit
def _integrate_adjoint(du, gi, a, b):
    """Adjoint of :func:`_integrate`: the gradients of ``j`` (also the input's and the previous
    synaptic current's) and of the previous voltage, from those of ``u`` and of the new ``i``."""
    return (gi - b * gi) + a * du, du - a * du


# --- LIF ---------------------------------------------------------------------------------------


@triton.jit
def lif_forward_kernel(
    x_ptr, z_ptr, u_ptr, j_ptr, v_ptr, i_ptr,
    a_ptr, b_ptr, vl_ptr, vth_ptr, vr_ptr,
    steps, m, period, x_stride,
    SAVE_U: tl.constexpr, SAVE_J: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """LIF over ``steps`` rows of ``m`` neurons; parameters repeat every ``period`` neurons."""
    k, mask = _block(m, BLOCK)
    q = k % period
    a = tl.load(a_ptr + q, mask=mask)
    b = tl.load(b_ptr + q, mask=mask)
    vl = tl.load(vl_ptr + q, mask=mask)
    vth = tl.load(vth_ptr + q, mask=mask)
    vr = tl.load(vr_ptr + q, mask=mask)
    v = tl.load(v_ptr + k, mask=mask)
    i = tl.load(i_ptr + k, mask=mask)
    xs = x_ptr + k
    out = k
    x = tl.load(xs, mask=mask)
    for t in range(steps):
        xs += x_stride
        following = tl.load(xs, mask=mask & (t + 1 < steps))
        j, u, i = _integrate(x.to(v.dtype), v, i, a, b, vl)
        z = _spike(u - vth)
        tl.store(z_ptr + out, z.to(z_ptr.dtype.element_ty), mask=mask)
        if SAVE_U:
            tl.store(u_ptr + out, u, mask=mask)
        if SAVE_J:
            tl.store(j_ptr + out, j, mask=mask)
        v = (1.0 - z) * u + z * vr
        x = following
        out += m
    tl.store(v_ptr + k, v, mask=mask)
    tl.store(i_ptr + k, i, mask=mask)


@triton.jit
def lif_backward_kernel(
    u_ptr, gx_ptr, gz_ptr, gv_ptr, gi_ptr, v0_ptr, j_ptr,
    a_ptr, b_ptr, vl_ptr, vth_ptr, vr_ptr,
    ga_ptr, gb_ptr, gvl_ptr, gvth_ptr, gvr_ptr,
    alpha, steps, m, period, gz_stride, last_row, gz_last,
    METHOD: tl.constexpr, HAS_GZ: tl.constexpr, PARAMS: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Backward of :func:`lif_forward_kernel` (reset in the graph), last step first. ``gx``
    receives the input gradient (with ``METHOD == -1`` it holds the surrogate derivative on
    entry); ``gv``, ``gi``: final state's gradient in, initial state's out. With ``PARAMS``
    (one period) the parameter gradients are summed over time per neuron. The previous step's
    ``u`` and spike gradient are loaded while the current step computes."""
    k, mask = _block(m, BLOCK)
    q = k % period
    a = tl.load(a_ptr + q, mask=mask)
    b = tl.load(b_ptr + q, mask=mask)
    vth = tl.load(vth_ptr + q, mask=mask)
    vr = tl.load(vr_ptr + q, mask=mask)
    gv = tl.load(gv_ptr + k, mask=mask)
    gi = tl.load(gi_ptr + k, mask=mask)
    if PARAMS:
        vl = tl.load(vl_ptr + q, mask=mask)
        v0 = tl.load(v0_ptr + k, mask=mask)
        ga = tl.full(gv.shape, 0.0, gv.dtype)
        gb = tl.full(gv.shape, 0.0, gv.dtype)
        gvl = tl.full(gv.shape, 0.0, gv.dtype)
        gvth = tl.full(gv.shape, 0.0, gv.dtype)
        gvr = tl.full(gv.shape, 0.0, gv.dtype)
    at = k + last_row
    gzs = gz_ptr + k + gz_last
    u = tl.load(u_ptr + at, mask=mask)
    gz_row = gv
    if HAS_GZ:
        gz_row = tl.load(gzs, mask=mask).to(gv.dtype)
    for step in range(steps):
        earlier = mask & (step + 1 < steps)
        u_prev = tl.load(u_ptr + at - m, mask=earlier)
        if HAS_GZ:
            gzs -= gz_stride
            gz_prev = tl.load(gzs, mask=earlier)
        distance = u - vth
        z = _spike(distance)
        gz = gv * (vr - u)
        if HAS_GZ:
            gz = gz_row + gz
        sg = (
            tl.load(gx_ptr + at, mask=mask).to(gv.dtype)
            if METHOD == -1
            else surrogate(distance, alpha, METHOD)
        )
        gd = gz * sg
        du = (1.0 - z) * gv + gd
        dj, gv_before = _integrate_adjoint(du, gi, a, b)
        tl.store(gx_ptr + at, dj.to(gx_ptr.dtype.element_ty), mask=mask)
        if PARAMS:
            z_prev = _spike(u_prev - vth)
            v_prev = tl.where(step + 1 < steps, (1.0 - z_prev) * u_prev + z_prev * vr, v0)
            j = tl.load(j_ptr + at, mask=mask)
            ga += du * ((vl - v_prev) + j)
            gb -= gi * j
            gvl += a * du
            gvth -= gd
            gvr += gv * z
        gv = gv_before
        gi = dj
        u = u_prev
        if HAS_GZ:
            gz_row = gz_prev.to(gv.dtype)
        at -= m
    tl.store(gv_ptr + k, gv, mask=mask)
    tl.store(gi_ptr + k, gi, mask=mask)
    if PARAMS:
        tl.store(ga_ptr + k, ga, mask=mask)
        tl.store(gb_ptr + k, gb, mask=mask)
        tl.store(gvl_ptr + k, gvl, mask=mask)
        tl.store(gvth_ptr + k, gvth, mask=mask)
        tl.store(gvr_ptr + k, gvr, mask=mask)


# --- LSNN (feed-forward) -----------------------------------------------------------------------


@triton.jit
def _threshold(adapt, c, vth, beta, MODE: tl.constexpr):
    """The firing threshold: Norse's adaptation (MODE 1) relaxes ``adapt`` towards ``v_th``
    first and uses it; Bellec's (MODE 2) is ``v_th + beta adapt``."""
    return adapt + c * (vth - adapt) if MODE == 1 else vth + beta * adapt


@triton.jit
def _adapt_after(adapt, thr, z, c, beta, MODE: tl.constexpr):
    """The adaptation variable after the step's spike ``z``."""
    return thr + beta * z if MODE == 1 else adapt + c * (z - adapt)


@triton.jit
def _adapt_to_spike(gadapt, c, beta, MODE: tl.constexpr):
    """The gradient the spike receives from the adaptation variable after the step."""
    return gadapt * beta if MODE == 1 else gadapt * c


@triton.jit
def _adapt_before(gadapt, gd, c, beta, MODE: tl.constexpr):
    """The gradient of the adaptation variable before the step (``gd``: of the distance)."""
    if MODE == 1:
        g_thr = gadapt - gd
        out = g_thr - c * g_thr
    else:
        out = (gadapt - c * gadapt) - beta * gd
    return out


@triton.jit
def lsnn_forward_kernel(
    x_ptr, z_ptr, u_ptr, d_ptr, v_ptr, i_ptr, adapt_ptr,
    a_ptr, bs_ptr, c_ptr, vl_ptr, vth_ptr, vr_ptr, beta_ptr,
    steps, m, period, x_stride,
    MODE: tl.constexpr, SAVE: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Feed-forward LSNN (reset in the graph); saves ``u`` and ``d`` with ``SAVE``."""
    k, mask = _block(m, BLOCK)
    q = k % period
    a = tl.load(a_ptr + q, mask=mask)
    bs = tl.load(bs_ptr + q, mask=mask)
    c = tl.load(c_ptr + q, mask=mask)
    vl = tl.load(vl_ptr + q, mask=mask)
    vth = tl.load(vth_ptr + q, mask=mask)
    vr = tl.load(vr_ptr + q, mask=mask)
    beta = tl.load(beta_ptr + q, mask=mask)
    v = tl.load(v_ptr + k, mask=mask)
    i = tl.load(i_ptr + k, mask=mask)
    adapt = tl.load(adapt_ptr + k, mask=mask)
    xs = x_ptr + k
    out = k
    x = tl.load(xs, mask=mask)
    for t in range(steps):
        xs += x_stride
        following = tl.load(xs, mask=mask & (t + 1 < steps))
        _, u, i = _integrate(x.to(v.dtype), v, i, a, bs, vl)
        thr = _threshold(adapt, c, vth, beta, MODE)
        d = u - thr
        z = _spike(d)
        adapt = _adapt_after(adapt, thr, z, c, beta, MODE)
        tl.store(z_ptr + out, z.to(z_ptr.dtype.element_ty), mask=mask)
        if SAVE:
            tl.store(u_ptr + out, u, mask=mask)
            tl.store(d_ptr + out, d, mask=mask)
        v = (1.0 - z) * u + z * vr
        x = following
        out += m
    tl.store(v_ptr + k, v, mask=mask)
    tl.store(i_ptr + k, i, mask=mask)
    tl.store(adapt_ptr + k, adapt, mask=mask)


@triton.jit
def lsnn_backward_kernel(
    u_ptr, d_ptr, gx_ptr, gz_ptr, gv_ptr, gi_ptr, gadapt_ptr,
    a_ptr, bs_ptr, c_ptr, vr_ptr, beta_ptr,
    alpha, steps, m, period, gz_stride, last_row, gz_last,
    MODE: tl.constexpr, METHOD: tl.constexpr, HAS_GZ: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Backward of :func:`lsnn_forward_kernel` (``gx`` as in :func:`lif_backward_kernel`)."""
    k, mask = _block(m, BLOCK)
    q = k % period
    a = tl.load(a_ptr + q, mask=mask)
    bs = tl.load(bs_ptr + q, mask=mask)
    c = tl.load(c_ptr + q, mask=mask)
    vr = tl.load(vr_ptr + q, mask=mask)
    beta = tl.load(beta_ptr + q, mask=mask)
    gv = tl.load(gv_ptr + k, mask=mask)
    gi = tl.load(gi_ptr + k, mask=mask)
    gadapt = tl.load(gadapt_ptr + k, mask=mask)
    at = k + last_row
    gzs = gz_ptr + k + gz_last
    for _ in range(steps):
        u = tl.load(u_ptr + at, mask=mask)
        d = tl.load(d_ptr + at, mask=mask)
        z = _spike(d)
        gz = gv * (vr - u)
        if HAS_GZ:
            gz = tl.load(gzs, mask=mask).to(gv.dtype) + gz
        sg = (
            tl.load(gx_ptr + at, mask=mask).to(gv.dtype)
            if METHOD == -1
            else surrogate(d, alpha, METHOD)
        )
        gd = (gz + _adapt_to_spike(gadapt, c, beta, MODE)) * sg
        du = (1.0 - z) * gv + gd
        dj, gv = _integrate_adjoint(du, gi, a, bs)
        tl.store(gx_ptr + at, dj.to(gx_ptr.dtype.element_ty), mask=mask)
        gadapt = _adapt_before(gadapt, gd, c, beta, MODE)
        gi = dj
        at -= m
        gzs -= gz_stride
    tl.store(gv_ptr + k, gv, mask=mask)
    tl.store(gi_ptr + k, gi, mask=mask)
    tl.store(gadapt_ptr + k, gadapt, mask=mask)


# --- LI ----------------------------------------------------------------------------------------


@triton.jit
def li_forward_kernel(
    x_ptr, out_ptr, j_ptr, v_ptr, i_ptr, a_ptr, b_ptr, vl_ptr,
    steps, m, period, x_stride,
    SAVE_J: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Leaky integrators: the voltage of every step into ``out`` (state dtype)."""
    k, mask = _block(m, BLOCK)
    q = k % period
    a = tl.load(a_ptr + q, mask=mask)
    b = tl.load(b_ptr + q, mask=mask)
    vl = tl.load(vl_ptr + q, mask=mask)
    v = tl.load(v_ptr + k, mask=mask)
    i = tl.load(i_ptr + k, mask=mask)
    xs = x_ptr + k
    at = k
    x = tl.load(xs, mask=mask)
    for t in range(steps):
        xs += x_stride
        following = tl.load(xs, mask=mask & (t + 1 < steps))
        j, v, i = _integrate(x.to(v.dtype), v, i, a, b, vl)
        tl.store(out_ptr + at, v, mask=mask)
        if SAVE_J:
            tl.store(j_ptr + at, j, mask=mask)
        x = following
        at += m
    tl.store(v_ptr + k, v, mask=mask)
    tl.store(i_ptr + k, i, mask=mask)


@triton.jit
def li_backward_kernel(
    gout_ptr, gx_ptr, gv_ptr, gi_ptr, out_ptr, v0_ptr, j_ptr,
    a_ptr, b_ptr, vl_ptr, ga_ptr, gb_ptr, gvl_ptr,
    steps, m, period, gout_stride, last_row, gout_last,
    HAS_GOUT: tl.constexpr, PARAMS: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Backward of :func:`li_forward_kernel`: the adjoint recursion (nothing saved for the input
    and state gradients; ``out`` and ``j`` read for parameter gradients)."""
    k, mask = _block(m, BLOCK)
    q = k % period
    a = tl.load(a_ptr + q, mask=mask)
    b = tl.load(b_ptr + q, mask=mask)
    gv = tl.load(gv_ptr + k, mask=mask)
    gi = tl.load(gi_ptr + k, mask=mask)
    if PARAMS:
        vl = tl.load(vl_ptr + q, mask=mask)
        v0 = tl.load(v0_ptr + k, mask=mask)
        ga = tl.full(gv.shape, 0.0, gv.dtype)
        gb = tl.full(gv.shape, 0.0, gv.dtype)
        gvl = tl.full(gv.shape, 0.0, gv.dtype)
    at = k + last_row
    gouts = gout_ptr + k + gout_last
    for step in range(steps):
        du = gv
        if HAS_GOUT:
            du = gv + tl.load(gouts, mask=mask).to(gv.dtype)
        dj, gv_before = _integrate_adjoint(du, gi, a, b)
        tl.store(gx_ptr + at, dj.to(gx_ptr.dtype.element_ty), mask=mask)
        if PARAMS:
            earlier = step + 1 < steps
            previous = tl.load(out_ptr + at - m, mask=mask & earlier)
            v_prev = tl.where(earlier, previous, v0)
            j = tl.load(j_ptr + at, mask=mask)
            ga += du * ((vl - v_prev) + j)
            gb -= gi * j
            gvl += a * du
        gv = gv_before
        gi = dj
        at -= m
        gouts -= gout_stride
    tl.store(gv_ptr + k, gv, mask=mask)
    tl.store(gi_ptr + k, gi, mask=mask)
    if PARAMS:
        tl.store(ga_ptr + k, ga, mask=mask)
        tl.store(gb_ptr + k, gb, mask=mask)
        tl.store(gvl_ptr + k, gvl, mask=mask)


# --- recurrent LIF / LSNN ----------------------------------------------------------------------


@triton.jit
def _recurrent_neuron_step(
    current, v, i, adapt, a, bs, c, vl, vth, vr, beta, MODE: tl.constexpr
):  # fmt: skip
    """One step of the recurrent layer's neurons on the total input ``current`` (reset
    detached in backward): (spikes, threshold distance, new v, i, adapt)."""
    _, u, i = _integrate(current, v, i, a, bs, vl)
    if MODE == 0:
        d = u - vth
        z = _spike(d)
    else:
        thr = _threshold(adapt, c, vth, beta, MODE)
        d = u - thr
        z = _spike(d)
        adapt = _adapt_after(adapt, thr, z, c, beta, MODE)
    v = (1.0 - z) * u + z * vr
    return z, d, v, i, adapt


@triton.jit
def _recurrent_neuron_backward(gz, d, sg, gv, gi, gadapt, a, bs, c, beta, MODE: tl.constexpr):
    """Adjoint of :func:`_recurrent_neuron_step`: (gradient of the total input current, of the
    previous v, i, adapt); ``gz`` is the spikes' gradient from outside and through W_rec,
    ``sg`` the surrogate derivative at the threshold distance ``d``."""
    z = _spike(d)
    if MODE != 0:
        gz = gz + _adapt_to_spike(gadapt, c, beta, MODE)
    gd = gz * sg
    dj, gv = _integrate_adjoint((1.0 - z) * gv + gd, gi, a, bs)
    if MODE != 0:
        gadapt = _adapt_before(gadapt, gd, c, beta, MODE)
    return dj, gv, dj, gadapt


@triton.jit
def _row_parameters(a_ptr, bs_ptr, c_ptr, vl_ptr, vth_ptr, vr_ptr, beta_ptr, offsets, mask):
    a = tl.load(a_ptr + offsets, mask=mask)
    bs = tl.load(bs_ptr + offsets, mask=mask)
    c = tl.load(c_ptr + offsets, mask=mask)
    vl = tl.load(vl_ptr + offsets, mask=mask)
    vth = tl.load(vth_ptr + offsets, mask=mask)
    vr = tl.load(vr_ptr + offsets, mask=mask)
    beta = tl.load(beta_ptr + offsets, mask=mask)
    return a, bs, c, vl, vth, vr, beta


@triton.jit
def recurrent_forward_kernel(
    p_ptr, wt_ptr, z0_ptr, z_ptr, d_ptr, v_ptr, i_ptr, adapt_ptr,
    a_ptr, bs_ptr, c_ptr, vl_ptr, vth_ptr, vr_ptr, beta_ptr,
    steps, row_size, hidden,
    MODE: tl.constexpr, HIDDEN: tl.constexpr,
):  # fmt: skip
    r"""Persistent recurrent layer: program ``r`` runs batch row ``r`` over all steps with
    ``W [hidden, hidden]`` (given transposed; padded to ``HIDDEN``, a power of two) in registers;
    the recurrent
    current of neuron ``n`` is :math:`\sum_k W_{nk} z_{t-1,k}`. ``row_size = batch * hidden``
    elements per step."""
    r = tl.program_id(0).to(tl.int64)
    n = tl.arange(0, HIDDEN)
    mask = n < hidden
    square = mask[:, None] & mask[None, :]
    # wt[k, n] = W[n, k] (wt_ptr: W transposed, contiguous). Reducing over the rows k leaves
    # the neuron index n on the contiguous dimension, spread over the threads: the per-neuron
    # state then takes few registers.
    wt = tl.load(wt_ptr + n[:, None] * hidden + n[None, :], mask=square, other=0.0)
    offsets = r * hidden + n
    a, bs, c, vl, vth, vr, beta = _row_parameters(
        a_ptr, bs_ptr, c_ptr, vl_ptr, vth_ptr, vr_ptr, beta_ptr, offsets, mask
    )
    v = tl.load(v_ptr + offsets, mask=mask)
    i = tl.load(i_ptr + offsets, mask=mask)
    adapt = v
    if MODE != 0:
        adapt = tl.load(adapt_ptr + offsets, mask=mask)
    previous = tl.load(z0_ptr + offsets, mask=mask, other=0.0)
    at = offsets
    for _ in range(steps):
        recurrent = _sum(wt * previous[:, None], 0)
        p = tl.load(p_ptr + at, mask=mask).to(v.dtype)
        z, d, v, i, adapt = _recurrent_neuron_step(
            p + recurrent, v, i, adapt, a, bs, c, vl, vth, vr, beta, MODE
        )
        tl.store(z_ptr + at, z.to(z_ptr.dtype.element_ty), mask=mask)
        tl.store(d_ptr + at, d, mask=mask)
        previous = tl.where(mask, z, 0.0)
        at += row_size
    tl.store(v_ptr + offsets, v, mask=mask)
    tl.store(i_ptr + offsets, i, mask=mask)
    if MODE != 0:
        tl.store(adapt_ptr + offsets, adapt, mask=mask)


@triton.jit
def recurrent_backward_kernel(
    d_ptr, w_ptr, gz_ptr, g_ptr, gv_ptr, gi_ptr, gadapt_ptr, gzr_ptr,
    a_ptr, bs_ptr, c_ptr, beta_ptr,
    alpha, steps, row_size, hidden, gz_stride, last_row, gz_last,
    MODE: tl.constexpr, METHOD: tl.constexpr, HAS_GZ: tl.constexpr, HIDDEN: tl.constexpr,
):  # fmt: skip
    r"""Backward of :func:`recurrent_forward_kernel`, persistent per batch row: ``g`` receives
    the gradient of the total input current per step (with ``METHOD == -1`` it holds the
    surrogate derivative on entry); ``gzr`` the final spikes' gradient in, the initial spikes'
    out (through :math:`W^\top g_t` per step)."""
    r = tl.program_id(0).to(tl.int64)
    n = tl.arange(0, HIDDEN)
    mask = n < hidden
    square = mask[:, None] & mask[None, :]
    w = tl.load(w_ptr + n[:, None] * hidden + n[None, :], mask=square, other=0.0)
    offsets = r * hidden + n
    a = tl.load(a_ptr + offsets, mask=mask)
    bs = tl.load(bs_ptr + offsets, mask=mask)
    c = tl.load(c_ptr + offsets, mask=mask)
    beta = tl.load(beta_ptr + offsets, mask=mask)
    gv = tl.load(gv_ptr + offsets, mask=mask)
    gi = tl.load(gi_ptr + offsets, mask=mask)
    gadapt = gv
    if MODE != 0:
        gadapt = tl.load(gadapt_ptr + offsets, mask=mask)
    gzr = tl.load(gzr_ptr + offsets, mask=mask)
    at = offsets + last_row
    gzs = gz_ptr + offsets + gz_last
    for _ in range(steps):
        d = tl.load(d_ptr + at, mask=mask)
        gz = gzr
        if HAS_GZ:
            gz = tl.load(gzs, mask=mask).to(gv.dtype) + gzr
        sg = tl.load(g_ptr + at, mask=mask) if METHOD == -1 else surrogate(d, alpha, METHOD)
        g, gv, gi, gadapt = _recurrent_neuron_backward(
            gz, d, sg, gv, gi, gadapt, a, bs, c, beta, MODE
        )
        tl.store(g_ptr + at, g, mask=mask)
        gzr = _sum(w * tl.where(mask, g, 0.0)[:, None], 0)
        at -= row_size
        gzs -= gz_stride
    tl.store(gv_ptr + offsets, gv, mask=mask)
    tl.store(gi_ptr + offsets, gi, mask=mask)
    tl.store(gzr_ptr + offsets, gzr, mask=mask)
    if MODE != 0:
        tl.store(gadapt_ptr + offsets, gadapt, mask=mask)


@triton.jit
def recurrent_step_kernel(
    p_ptr, rec_ptr, z_ptr, zs_ptr, d_ptr, v_ptr, i_ptr, adapt_ptr,
    a_ptr, bs_ptr, c_ptr, vl_ptr, vth_ptr, vr_ptr, beta_ptr,
    size, MODE: tl.constexpr, SEPARATE_ZS: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """One step of a recurrent layer on ``size = batch * hidden`` neurons, the recurrent
    current ``rec`` computed before (cuBLAS); spikes into ``z`` and, with ``SEPARATE_ZS`` (``z``
    not in the state dtype), into ``zs`` in the state dtype (fed back next step)."""
    k, mask = _block(size, BLOCK)
    a, bs, c, vl, vth, vr, beta = _row_parameters(
        a_ptr, bs_ptr, c_ptr, vl_ptr, vth_ptr, vr_ptr, beta_ptr, k, mask
    )
    v = tl.load(v_ptr + k, mask=mask)
    i = tl.load(i_ptr + k, mask=mask)
    adapt = v
    if MODE != 0:
        adapt = tl.load(adapt_ptr + k, mask=mask)
    p = tl.load(p_ptr + k, mask=mask).to(v.dtype)
    rec = tl.load(rec_ptr + k, mask=mask)
    z, d, v, i, adapt = _recurrent_neuron_step(
        p + rec, v, i, adapt, a, bs, c, vl, vth, vr, beta, MODE
    )
    tl.store(z_ptr + k, z.to(z_ptr.dtype.element_ty), mask=mask)
    if SEPARATE_ZS:
        tl.store(zs_ptr + k, z, mask=mask)
    tl.store(d_ptr + k, d, mask=mask)
    tl.store(v_ptr + k, v, mask=mask)
    tl.store(i_ptr + k, i, mask=mask)
    if MODE != 0:
        tl.store(adapt_ptr + k, adapt, mask=mask)


@triton.jit
def recurrent_step_backward_kernel(
    d_ptr, gz_ptr, gzr_ptr, g_ptr, gv_ptr, gi_ptr, gadapt_ptr,
    a_ptr, bs_ptr, c_ptr, beta_ptr, alpha, size,
    MODE: tl.constexpr, METHOD: tl.constexpr, HAS_GZ: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Backward of one :func:`recurrent_step_kernel` step; ``gzr`` holds the spikes'
    gradient through W_rec (the launcher computes :math:`g_{t+1} W` with cuBLAS)."""
    k, mask = _block(size, BLOCK)
    a = tl.load(a_ptr + k, mask=mask)
    bs = tl.load(bs_ptr + k, mask=mask)
    c = tl.load(c_ptr + k, mask=mask)
    beta = tl.load(beta_ptr + k, mask=mask)
    gv = tl.load(gv_ptr + k, mask=mask)
    gi = tl.load(gi_ptr + k, mask=mask)
    gadapt = gv
    if MODE != 0:
        gadapt = tl.load(gadapt_ptr + k, mask=mask)
    d = tl.load(d_ptr + k, mask=mask)
    gz = tl.load(gzr_ptr + k, mask=mask)
    if HAS_GZ:
        gz = tl.load(gz_ptr + k, mask=mask).to(gv.dtype) + gz
    sg = tl.load(g_ptr + k, mask=mask) if METHOD == -1 else surrogate(d, alpha, METHOD)
    g, gv, gi, gadapt = _recurrent_neuron_backward(gz, d, sg, gv, gi, gadapt, a, bs, c, beta, MODE)
    tl.store(g_ptr + k, g, mask=mask)
    tl.store(gv_ptr + k, gv, mask=mask)
    tl.store(gi_ptr + k, gi, mask=mask)
    if MODE != 0:
        tl.store(gadapt_ptr + k, gadapt, mask=mask)


# --- max pooling -------------------------------------------------------------------------------


@triton.jit
def _comparable(value):
    """bfloat16 compared in float32 (exact; Triton's interpreter cannot compare bfloat16)."""
    return value.to(tl.float32) if value.dtype == tl.bfloat16 else value


@triton.jit
def max_pool_forward_kernel(
    x_ptr, y_ptr, where_ptr, count, height, width, out_height, out_width,
    K: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Maxima of the ``K x K`` windows: row-major scan, a larger value or a NaN replaces the
    current one (ties keep the first, the last NaN wins), as PyTorch's kernels pick."""
    o, mask = _block(count, BLOCK)
    col = o % out_width
    rest = o // out_width
    row = rest % out_height
    plane = rest // out_height
    base = plane * height * width + (row * K) * width + col * K
    best = _comparable(tl.load(x_ptr + base, mask=mask))
    at = tl.full(o.shape, 0, tl.int32)
    for position in range(1, K * K):  # a loop, not unrolled: few registers for any K
        value = tl.load(x_ptr + base + (position // K) * width + (position % K), mask=mask)
        value = _comparable(value)
        take = (value > best) | (value != value)
        best = tl.where(take, value, best)
        at = tl.where(take, position, at)
    tl.store(y_ptr + o, best.to(y_ptr.dtype.element_ty), mask=mask)
    tl.store(where_ptr + o, at.to(tl.uint8), mask=mask)


@triton.jit
def max_pool_backward_kernel(
    gy_ptr, where_ptr, gx_ptr, count, height, width, out_height, out_width,
    K: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Every input element: its window's output gradient if it is the recorded maximum, else
    0 (also outside every window)."""
    e, mask = _block(count, BLOCK)
    col = e % width
    rest = e // width
    row = rest % height
    plane = rest // height
    out_row = row // K
    out_col = col // K
    inside = mask & (out_row < out_height) & (out_col < out_width)
    o = (plane * out_height + out_row) * out_width + out_col
    at = tl.load(where_ptr + o, mask=inside, other=255).to(tl.int32)
    grad = tl.load(gy_ptr + o, mask=inside, other=0.0)
    position = (row % K) * K + (col % K)
    tl.store(gx_ptr + e, tl.where(inside & (at == position), grad, 0.0), mask=mask)
