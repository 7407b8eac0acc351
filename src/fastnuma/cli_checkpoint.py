"""``fastnuma replay``'s checkpoint options (docs/checkpoint.md):

    fastnuma replay TRACE --checkpoint DIR --checkpoint-every 100M [...]
    fastnuma replay [TRACE] --resume DIR [--checkpoint DIR2] [--checkpoint-every N] [--out ...]

Imports nothing heavy (``fastnuma --help`` loads no Numba).
"""
from __future__ import annotations

_SUFFIXES = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
# the flags that shape the machine or the replay: a resumed replay takes them from the
# checkpoint, so giving them with --resume is an error rather than silently ignored
MACHINE_FLAGS = ("topology", "numa_balancing", "profile", "thp", "epoch", "strict")


def parse_count(text: str, flag: str) -> int:
    """A positive number of events: digits with an optional K, M, G or T suffix (powers
    of 1000: 100M = 100,000,000)."""
    t = text.strip().lower().replace("_", "")
    scale = _SUFFIXES.get(t[-1:], 1)
    number = t[:-1] if t[-1:] in _SUFFIXES else t
    if number.isdigit() and int(number) > 0:
        return int(number) * scale
    raise ValueError(f"{flag} {text!r}: expected a positive number of events, such as "
                     f"100000, 500K or 100M")


def add_arguments(rep) -> None:
    """The replay subcommand's checkpoint flags."""
    rep.add_argument("--checkpoint", metavar="DIR", help="save the whole simulation into "
                     "DIR every --checkpoint-every events (each checkpoint written whole or "
                     "not at all; the latest is kept)")
    rep.add_argument("--checkpoint-every", metavar="N", help="events between checkpoints, "
                     "with an optional K/M/G suffix (100M = 100,000,000); checkpoints fall "
                     "exactly after events N, 2N, ...")
    rep.add_argument("--resume", metavar="DIR", help="continue the replay saved in checkpoint "
                     "DIR (machine and replay settings come from it; TRACE defaults to the "
                     "checkpoint's) and keep checkpointing into DIR")


def replay_options(args, named: str) -> dict:
    """Keywords of ``Simulator.replay`` for a new replay's checkpoints."""
    if args.checkpoint_every is not None and args.checkpoint is None:
        raise ValueError("--checkpoint-every needs --checkpoint DIR")
    if args.checkpoint is None:
        return {}
    if args.checkpoint_every is None:
        raise ValueError("--checkpoint needs --checkpoint-every N")
    return {"checkpoint": args.checkpoint,
            "checkpoint_every": parse_count(args.checkpoint_every, "--checkpoint-every"),
            "checkpoint_meta": {"topology_name": named}}


def resume(args):
    """(simulator, topology name, trace, replay keywords) for ``--resume DIR``."""
    given = [f"--{name.replace('_', '-')}" for name in MACHINE_FLAGS
             if getattr(args, name) is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: a resumed replay takes the machine and the "
                         f"replay settings from the checkpoint; drop them")
    import fastnuma as fn
    from . import checkpoint
    info = checkpoint.info(args.resume)
    if info.get("kind") != "replay":
        raise ValueError(f"--resume {args.resume}: a checkpoint of a simulator, not of a "
                         f"replay (Simulator.save); nothing to resume")
    sim = fn.Simulator.load(args.resume)
    trace = args.trace if args.trace is not None else info["replay"]["source"]
    if trace is None:
        raise ValueError(f"--resume {args.resume}: the replay's trace was in memory; give "
                         f"TRACE")
    kw = {"resume": True}
    if args.checkpoint is not None:
        kw["checkpoint"] = args.checkpoint
    if args.checkpoint_every is not None:
        kw["checkpoint_every"] = parse_count(args.checkpoint_every, "--checkpoint-every")
    named = info.get("meta", {}).get("topology_name", "from the checkpoint")
    return sim, named, trace, kw
