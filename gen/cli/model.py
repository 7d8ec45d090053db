"""``bfly train-demo``, ``bfly quantize`` and ``bfly inspect``: the example network, its BFT
blocks quantized into weight images, and what an image holds."""

import json
import sys

from bfly.hw.config import EngineConfig, ROUNDING_MODES, OVERFLOW_MODES

from .common import UserError, load_image, load_npy, output_path, seed_arg

__all__ = ["register"]


def cmd_train_demo(args):
    import io
    import numpy as np
    from bfly.examples.digits import train_demo, save_model
    from bfly.gen.files import write_files
    if args.epochs < 1:
        raise UserError(f"--epochs must be at least 1, not {args.epochs}")
    print(f"training the digits network with BFT pointwise layers (k = 4) and the dense baseline, "
          f"{args.epochs} epochs, seed {args.seed}", flush=True)
    bft, dense, calib, report = train_demo(args.epochs, args.seed, progress=_epoch_progress(args.epochs))
    files = {}
    for name, model in (("model.pt", bft), ("dense.pt", dense)):
        buf = io.BytesIO()
        save_model(model, buf, extra={"report": report})
        files[name] = buf.getvalue()
    buf = io.BytesIO()
    np.save(buf, calib)
    files["calib.npy"] = buf.getvalue()
    files["train_report.json"] = json.dumps(report, indent=2) + "\n"
    write_files(args.output, files)
    b, d = report["bft"], report["dense"]
    print(f"  {'pointwise':<10} {'test accuracy':>14} {'pointwise MACs/image':>22}")
    print(f"  {'BFT (k=4)':<10} {b['accuracy']:>13.2%} {b['pointwise_macs_per_image']:>22,}")
    print(f"  {'dense':<10} {d['accuracy']:>13.2%} {d['pointwise_macs_per_image']:>22,}")
    print(f"wrote {args.output}/model.pt (BFT), dense.pt, calib.npy ({len(calib)} training images), "
          f"train_report.json")
    return 0


def _epoch_progress(epochs):
    """A tqdm bar per network, on stderr."""
    from tqdm import tqdm
    bars = {}

    def progress(name, epoch, loss):
        if name not in bars:
            bars[name] = tqdm(total=epochs, desc=f"  {name}", unit="epoch", leave=False,
                              disable=not sys.stderr.isatty())
        bars[name].update(1)
        bars[name].set_postfix(loss=f"{loss:.3f}")
        if epoch == epochs - 1:
            bars[name].close()
    return progress


def _calibration(path, shape=None):
    """The calibration array in ``path``: real, finite, not all zero (and of ``shape`` after the
    batch axis, when given)."""
    import numpy as np
    calib = load_npy(path, "calibration inputs")
    if shape is not None and (calib.ndim != 1 + len(shape) or calib.shape[1:] != shape):
        raise UserError(f"{path}: expected images shaped (N, {', '.join(map(str, shape))}), "
                        f"not {calib.shape}")
    if calib.ndim < 2 or len(calib) == 0:
        raise UserError(f"{path}: expected a batch of inputs (N, ...), not shape {calib.shape}")
    if not (np.issubdtype(calib.dtype, np.integer) or np.issubdtype(calib.dtype, np.floating)):
        raise UserError(f"{path}: expected real-valued inputs, not {calib.dtype}")
    if not np.isfinite(calib).all():
        raise UserError(f"{path}: the calibration inputs hold NaN or infinite values")
    if not np.any(calib):
        raise UserError(f"{path}: the calibration inputs are all zero; they set the scales, so "
                        f"they must be real inputs")
    return calib.astype(np.float32)


def _engine_args(args):
    engine = {"data_bits": args.data_bits, "weight_bits": args.weight_bits,
              "rounding": args.rounding, "overflow": args.overflow}
    EngineConfig.bft(4, 2, **engine)          # validates widths and modes with the usual messages
    return engine


def _write_images(args, images, report, summary_line):
    from bfly.gen.files import write_files
    from bfly.sw.image import ImageError
    try:
        files = {f"{name}.bfly": img.to_bytes() for name, img in images.items()}
    except ImageError as e:
        raise UserError(f"cannot write the weight images: {e}")
    files["quantize_report.json"] = json.dumps(report, indent=2) + "\n"
    write_files(args.output, files)
    for name, img in images.items():
        r = img.report
        sat = max(s["saturation_rate"] for s in r["stages"])
        print(f"  {name}.bfly  chain {img.config.chain_rows()}  shifts {img.params.shifts}  "
              f"final SQNR {r['final_sqnr_db']:.1f} dB, worst stage saturation {sat:.2%}")
    if summary_line:
        print(summary_line)
    print(f"wrote {len(images)} weight images and quantize_report.json to {args.output}")


def cmd_quantize(args):
    from bfly.sw.network import is_model_spec
    if is_model_spec(args.model):
        return _quantize_user_model(args)
    if args.weights is not None:
        raise UserError("--weights goes with a model named FILE.py:CLASS")
    from bfly.examples.digits import load_model, quantize_model, quantized_accuracy, evaluate, load_digits_split, \
        ModelFileError, bft_blocks
    from bfly.sw.quantize import QuantizeError
    try:
        model = load_model(args.model)
    except ModelFileError as e:
        raise UserError(f"{e} (for your own network, name it FILE.py:CLASS)")
    if not list(bft_blocks(model)):
        raise UserError(f"{args.model}: the model has no BFT blocks to quantize (a dense model?)")
    calib = _calibration(args.calib, (1, 8, 8))
    try:
        engine = _engine_args(args)
        images = quantize_model(model, calib, **engine)
    except QuantizeError as e:
        raise UserError(str(e))
    _, _, xte, yte = load_digits_split()
    acc_float = evaluate(model, xte, yte)
    acc_quant = quantized_accuracy(model, images)
    report = {"engine": engine, "float_accuracy": acc_float, "quantized_accuracy": acc_quant,
              "blocks": {name: img.report for name, img in images.items()}}
    _write_images(args, images, report,
                  f"test accuracy: float {acc_float:.2%}, every BFT block {args.data_bits}-bit through "
                  f"the golden model {acc_quant:.2%}")
    return 0


def _quantize_user_model(args):
    """``bfly quantize FILE.py:CLASS``: every BFTConv2d layer of the user's network, each with its
    bias (what follows it stays on the host)."""
    from bfly.sw.network import ModelError, load_user_model, quantize_layers, bft_layers, image_name
    try:
        engine = _engine_args(args)
        model = load_user_model(args.model, args.weights)
        layers = bft_layers(model)
        if not layers:
            raise ModelError(f"{args.model}: the model has no BFTConv2d layer to quantize")
        calib = _calibration(args.calib)
        images = quantize_layers(model, calib, layers, **engine)
    except ModelError as e:
        raise UserError(str(e))
    report = {"engine": engine, "model": args.model,
              "layers": {name: f"{image_name(name)}.bfly" for name, _ in layers},
              "on_host": "everything but the BFT layers (each image holds a layer's chain and "
                         "bias): batch norms, activations and the rest of the forward",
              "blocks": {name: img.report for name, img in images.items()}}
    _write_images(args, images, report, None)
    return 0


def cmd_inspect(args):
    img = load_image(args.image)
    cfg, p = img.config, img.params
    info = {
        "config": cfg.to_dict(),
        "chain": cfg.chain_rows(),
        "shifts": p.shifts,
        "epilogue": None if p.epilogue is None else {
            "gain": p.epilogue.gain, "out_shift": p.epilogue.out_shift, "relu": p.epilogue.relu,
            "mult_range": [int(p.epilogue.mult.min()), int(p.epilogue.mult.max())],
            "bias_range": [int(p.epilogue.bias.min()), int(p.epilogue.bias.max())]},
        "input_scale": img.input_scale,
        "output_scale": img.output_scale,
        "report": img.report,
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{args.image}: {cfg.n_in} -> {cfg.n_out} channels, {cfg.data_bits}-bit data, "
          f"{cfg.weight_bits}-bit weights, {cfg.rounding}, {cfg.overflow}"
          f"{', epilogue' if cfg.epilogue else ''}")
    stages = {s["stage"]: s for s in img.report.get("stages", [])}
    for l, f in enumerate(cfg.factors):
        r = stages.get(l, {})
        extra = (f"  SQNR {r['sqnr_db']:.1f} dB, saturation {r['saturation_rate']:.3%}" if r else "")
        print(f"  stage {l}: [p,q,r,s,t] = {f.as_row()}  shift {p.shifts[l]}{extra}")
    if p.epilogue is not None:
        e = info["epilogue"]
        sat = img.report.get("epilogue", {}).get("saturation_rate")
        print(f"  epilogue: residual gain {e['gain']}, output shift {e['out_shift']}, "
              f"ReLU {'on' if e['relu'] else 'off'}, A in {e['mult_range']}, Bias in {e['bias_range']}"
              + (f", saturation {sat:.3%}" if sat is not None else ""))
    final = ""
    if "final_sqnr_db" in img.report:
        final = f", final SQNR {img.report['final_sqnr_db']:.1f} dB"
        if "calibration_pixels" in img.report:
            final += f" on {img.report['calibration_pixels']} calibration pixels"
    print(f"  input scale {img.input_scale:.6g}, output scale {img.output_scale:.6g}{final}")
    return 0


def register(sub):
    p = sub.add_parser("train-demo", help="train the digits network (BFT and dense), save model.pt")
    p.add_argument("-o", "--output", required=True, metavar="DIR", type=output_path, help="output directory")
    p.add_argument("--epochs", type=int, default=40, help="training epochs (default 40)")
    p.add_argument("--seed", type=seed_arg, default=0, help="random seed (default 0)")
    p.set_defaults(func=cmd_train_demo)

    p = sub.add_parser("quantize", help="quantize every BFT block of a trained model into weight images")
    p.add_argument("model", help="FILE.py:CLASS, your own network (built with no arguments), or "
                                 "model.pt written by bfly train-demo")
    p.add_argument("--weights", metavar="PT", help="state_dict for FILE.py:CLASS (torch.save)")
    p.add_argument("--calib", required=True, metavar="NPY",
                   help="calibration inputs, a batch of what the model's forward takes "
                        "((N, 1, 8, 8) for the digits model)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", type=output_path, help="output directory")
    p.add_argument("--data-bits", type=int, default=8, help="engine activation width (default 8)")
    p.add_argument("--weight-bits", type=int, default=8, help="engine weight width (default 8)")
    p.add_argument("--rounding", choices=ROUNDING_MODES, default="half_even", help="engine rounding")
    p.add_argument("--overflow", choices=OVERFLOW_MODES, default="saturate", help="engine overflow")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("inspect", help="show a weight image: configuration, shifts, SQNR, saturation")
    p.add_argument("image", help="a .bfly weight image")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_inspect)
