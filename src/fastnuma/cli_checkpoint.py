"""``fastnuma replay``'s checkpoint options (docs/checkpoint.md):

    fastnuma replay TRACE --checkpoint DIR --checkpoint-every 100M [...]
    fastnuma replay [TRACE] --resume DIR [--checkpoint DIR2] [--checkpoint-every N] [--out ...]

The run configuration (machine, knobs, policies, CPU map, cost model) of a checkpointed
``fastnuma replay`` is kept in the checkpoint's meta; --resume takes it from there.

Imports nothing heavy (``fastnuma --help`` loads no Numba).
"""
from __future__ import annotations

_SUFFIXES = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


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
                     "DIR (the run configuration comes from it; TRACE defaults to the "
                     "checkpoint's) and keep checkpointing into DIR")


def resume_setup(args):
    """For ``--resume DIR``: (run configuration, topology label) saved in the checkpoint,
    after refusing options that would change the run; sets ``args.trace`` to the recorded
    trace unless given. None without --resume."""
    if args.resume is None:
        return None
    from . import checkpoint
    from .cli_whatif import config_from_args
    from .runconfig import RunConfig
    strict, args.strict = args.strict, None
    if args.epoch is not None or strict or \
            config_from_args(args).to_dict() != RunConfig().to_dict():
        raise ValueError("a resumed replay takes its machine, policies and settings from the "
                         "checkpoint: drop the other options (--topology, --epoch, -c, ...)")
    info = checkpoint.info(args.resume)
    meta = info.get("meta") or {}
    if info.get("kind") != "replay" or "config" not in meta:
        raise ValueError(f"--resume {args.resume}: not a checkpoint of `fastnuma replay` "
                         f"(Simulator.save or a Python replay); resume it from Python")
    if args.trace is None:
        args.trace = info["replay"]["source"]
    return RunConfig.from_dict(meta["config"]), meta.get("topology_name", "")


def run_options(args, config, named) -> dict:
    """Keywords of ``whatif.run`` for --checkpoint / --resume."""
    every = (None if args.checkpoint_every is None
             else parse_count(args.checkpoint_every, "--checkpoint-every"))
    if args.resume is not None:
        return {"resume": args.resume, "checkpoint": args.checkpoint,
                "checkpoint_every": every}
    if every is not None and args.checkpoint is None:
        raise ValueError("--checkpoint-every needs --checkpoint DIR")
    if args.checkpoint is None:
        return {}
    if every is None:
        raise ValueError("--checkpoint needs --checkpoint-every N")
    return {"checkpoint": args.checkpoint, "checkpoint_every": every,
            "checkpoint_meta": {"topology_name": named, "config": config.to_dict()}}
