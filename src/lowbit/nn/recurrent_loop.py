"""The Python time loop of the quantized recurrent twins: the reference path, and the path with quantized activations.

It restates torch's recurrences (``nn.RNN``/``nn.LSTM``/``nn.GRU`` docs), gate order as in torch:

    RNN:  h' = act(W_ih x̂ + b_ih + W_hh ĥ + b_hh),                act = tanh or relu
    LSTM: i, f, g, o = σ, σ, tanh, σ of (W_ih x̂ + b_ih + W_hh ĥ + b_hh) split in 4
          c' = f ⊙ c + i ⊙ g,   h' = o ⊙ tanh(c')   (then h' = W_hr h' with proj_size > 0)
    GRU:  r, z = σ of the first two quarters of (W_ih x̂ + b_ih) + (W_hh ĥ + b_hh)
          n = tanh(gi_n + r ⊙ gh_n),   h' = (1 - z) ⊙ n + z ⊙ h

x̂ and ĥ are the quantized layer input and hidden state (``module.quantize_act``), weights come from
``module.quantized_weight`` (quantized once per forward). W_ih x̂ is one matmul over the whole sequence.

Variable lengths (PackedSequence) run on the padded batch in the caller's order with a mask: a sequence's state
stops changing after its last step (forward) or starts changing at its last step (reverse), and its padded
outputs are 0, which is what torch's packed kernels compute. Dropout between layers uses F.dropout, so in
training with dropout > 0 the random masks differ from the fused kernel's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from ..quantizers.base import float32_under_autocast


def _cell(mode: str, gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None):
    """One step given gi = W_ih x̂_t + b_ih and gh = W_hh ĥ_{t-1} + b_hh; returns (h', c')."""
    if mode == "RNN_TANH":
        return torch.tanh(gi + gh), None
    if mode == "RNN_RELU":
        return torch.relu(gi + gh), None
    if mode == "LSTM":
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c_new), c_new
    if mode == "GRU":
        ir, iz, in_ = gi.chunk(3, dim=-1)
        hr, hz, hn = gh.chunk(3, dim=-1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        n = torch.tanh(in_ + r * hn)
        return (1 - z) * n + z * h, None
    raise ValueError(f"recurrent loop: mode={mode!r} is not accepted; expected RNN_TANH, RNN_RELU, LSTM or GRU")


def _direction(m: nn.RNNBase, x: torch.Tensor, h, c, layer: int, sfx: str, mask, reverse: bool):
    """Run one layer in one direction over x (T, B, F); returns (outputs (T, B, H_out), h_T, c_T)."""
    role = f"hidden_l{layer}{sfx}"
    warmed = m.__dict__.setdefault("_warmed_act_roles", set())
    if m.act_quant is not None and role not in warmed:
        # A calibrating quantizer (uniform) fixes its step on the first tensor it sees; here that would be h_0,
        # often all-zero (step 1.0, every later state rounds to 0). So, once per module, it first sees the whole
        # float-state run of this batch (valid steps only). For already-calibrated quantizers this is a no-op.
        with torch.no_grad():
            ys, _, _ = _scan(m, x, h, c, layer, sfx, mask, reverse, quantize_hidden=False)
            states = torch.cat([h.unsqueeze(0), ys]) if mask is None else torch.cat([h, ys[mask]])
            m.act_quants[role](float32_under_autocast(states))
        warmed.add(role)
    return _scan(m, x, h, c, layer, sfx, mask, reverse, quantize_hidden=True)


def _scan(m: nn.RNNBase, x: torch.Tensor, h, c, layer: int, sfx: str, mask, reverse: bool, quantize_hidden: bool):
    b = (lambda n: getattr(m, n)) if m.bias else (lambda n: None)
    gi = F.linear(x, m.quantized_weight(f"weight_ih_l{layer}{sfx}"), b(f"bias_ih_l{layer}{sfx}"))  # (T, B, G)
    w_hh, b_hh = m.quantized_weight(f"weight_hh_l{layer}{sfx}"), b(f"bias_hh_l{layer}{sfx}")
    w_hr = m.quantized_weight(f"weight_hr_l{layer}{sfx}") if getattr(m, "proj_size", 0) > 0 else None
    # unbind, not gi[t]: each select's backward would fill a zero tensor of the whole (T, B, G) size (O(T²))
    gi_steps = gi.unbind(0)
    ys: list[torch.Tensor] = [x.new_empty(0)] * x.shape[0]
    for t in range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0]):
        hq = m.quantize_act(f"hidden_l{layer}{sfx}", h) if quantize_hidden else h
        h_new, c_new = _cell(m.mode, gi_steps[t], F.linear(hq, w_hh, b_hh), h, c)
        if w_hr is not None:
            h_new = F.linear(h_new, w_hr)
        if mask is None:
            h, c, ys[t] = h_new, c_new, h_new
        else:  # finished (or not yet started, in reverse) sequences keep their state and output 0
            keep = mask[t].unsqueeze(1)
            h = torch.where(keep, h_new, h)
            c = None if c is None else torch.where(keep, c_new, c)
            ys[t] = torch.where(keep, h_new, torch.zeros_like(h_new))
    return torch.stack(ys), h, c


def recurrent_loop(m: nn.RNNBase, input, hx=None):
    """Same inputs and outputs as ``m``'s float forward (tensor or PackedSequence, batched or not)."""
    is_lstm = m.mode == "LSTM"
    packed = isinstance(input, PackedSequence)
    if packed:
        x, lengths = pad_packed_sequence(input)  # (T, B, F) in the caller's batch order
        batched = True
    else:
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(1)
        x = x.transpose(0, 1) if batched and m.batch_first else x
        lengths = None
    n_dir = 2 if m.bidirectional else 1
    h_size = m.proj_size if is_lstm and m.proj_size > 0 else m.hidden_size
    if hx is None:
        h0 = x.new_zeros(m.num_layers * n_dir, x.shape[1], h_size)
        c0 = x.new_zeros(m.num_layers * n_dir, x.shape[1], m.hidden_size) if is_lstm else None
    else:
        h0, c0 = hx if is_lstm else (hx, None)
        if not batched:
            h0, c0 = h0.unsqueeze(1), None if c0 is None else c0.unsqueeze(1)
    mask = None if lengths is None else (torch.arange(x.shape[0])[:, None] < lengths[None, :]).to(x.device)

    layer_in, h_n, c_n = x, [], []
    for k in range(m.num_layers):
        xq = m.quantize_act(f"input_l{k}", layer_in)
        outs = []
        for d in range(n_dir):
            i = k * n_dir + d
            y, h, c = _direction(
                m, xq, h0[i], None if c0 is None else c0[i], k, "_reverse" if d else "", mask, reverse=d == 1
            )
            outs.append(y)
            h_n.append(h)
            c_n.append(c)
        layer_in = torch.cat(outs, dim=2) if n_dir == 2 else outs[0]
        if m.dropout > 0 and m.training and k < m.num_layers - 1:
            layer_in = F.dropout(layer_in, m.dropout, training=True)
    h_n = torch.stack(h_n)
    hidden = (h_n, torch.stack(c_n)) if is_lstm else h_n

    out = layer_in
    if packed:  # re-pack in torch's layout: step t holds the first batch_sizes[t] sequences in sorted order
        if input.sorted_indices is not None:
            out = out.index_select(1, input.sorted_indices)
        data = torch.cat([out[t, : int(bs)] for t, bs in enumerate(input.batch_sizes)])
        return PackedSequence(data, input.batch_sizes, input.sorted_indices, input.unsorted_indices), hidden
    if not batched:
        out = out.squeeze(1)
        hidden = (hidden[0].squeeze(1), hidden[1].squeeze(1)) if is_lstm else hidden.squeeze(1)
    elif m.batch_first:
        out = out.transpose(0, 1)
    return out, hidden
