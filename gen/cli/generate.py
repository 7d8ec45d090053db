"""``bfly gen``: the engine's Verilog, manifest.json, regmap.json and C header."""

from pathlib import Path

from bfly.gen.synth import TARGETS

from .common import UserError, add_config_args, config_from_args, output_path, step_bar, summary

__all__ = ["register"]


def cmd_gen(args):
    from bfly.gen.emit import write_outputs
    cfg = config_from_args(args)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out}: exists and is not a directory")
    with step_bar(f"bfly gen {cfg.id}") as progress:
        man = write_outputs(cfg, out, target=args.target, progress=progress)
    print(summary(cfg, man))
    for name in (f"{cfg.name}.v", "manifest.json", "regmap.json", f"{cfg.name}_regs.h"):
        print(f"  wrote {out / name}")
    return 0


def register(sub):
    p = sub.add_parser("gen", help="generate Verilog, manifest.json, regmap.json and a C header")
    add_config_args(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR", type=output_path, help="output directory")
    p.add_argument("--target", default=None, choices=list(TARGETS),
                   help="the engine Verilog that bfly synth places and routes for this device, "
                        "vendor primitives included (default: generic Verilog)")
    p.set_defaults(func=cmd_gen)
