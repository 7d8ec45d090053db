"""``bfly train-demo``, ``bfly export``, ``bfly evaluate`` and ``bfly inspect``: the example network,
a trained network's BFT blocks exported as weight images and ``network.json``, its accuracy
through the golden model or a board, and what an image holds."""

import json
import sys

from bfly.hw.config import EngineConfig, ROUNDING_MODES, OVERFLOW_MODES

from .common import UserError, load_image, load_npy, output_path, seed_arg, add_link_args, positive_int

__all__ = ["register"]


def cmd_train_demo(args):
    import io
    import numpy as np
    from bfly.examples.digits import train_demo, save_model, load_digits_split
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
    _, _, xte, yte = load_digits_split()
    buf = io.BytesIO()
    np.savez(buf, x=xte, y=yte)
    files["test.npz"] = buf.getvalue()
    files["train_report.json"] = json.dumps(report, indent=2) + "\n"
    write_files(args.output, files)
    b, d = report["bft"], report["dense"]
    print(f"  {'pointwise':<10} {'test accuracy':>14} {'pointwise MACs/image':>22}")
    print(f"  {'BFT (k=4)':<10} {b['accuracy']:>13.2%} {b['pointwise_macs_per_image']:>22,}")
    print(f"  {'dense':<10} {d['accuracy']:>13.2%} {d['pointwise_macs_per_image']:>22,}")
    print(f"wrote {args.output}/model.pt (BFT), dense.pt, calib.npy ({len(calib)} training images), "
          f"test.npz ({len(xte)} test images and labels), train_report.json")
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


def _load_model(spec, weights):
    """``(model, names, digits)``: the model ``spec`` names (``FILE.py:CLASS`` with ``weights``,
    or a digits ``model.pt``), the file names of its layers' images (None: the default) and
    whether it is the digits example."""
    from bfly.sw.network import is_model_spec, load_user_model, ModelError
    if is_model_spec(spec):
        try:
            return load_user_model(spec, weights), None, False
        except ModelError as e:
            raise UserError(str(e))
    if weights is not None:
        raise UserError("--weights goes with a model named FILE.py:CLASS")
    from bfly.examples.digits import load_model, ModelFileError, bft_blocks, layer_names
    try:
        model = load_model(spec)
    except ModelFileError as e:
        raise UserError(f"{e} (for your own network, name it FILE.py:CLASS)")
    if not list(bft_blocks(model)):
        raise UserError(f"{spec}: the model has no BFT blocks to export (a dense model?)")
    return model, layer_names(model), True


def cmd_export(args):
    """``bfly export MODEL --calib NPY -o DIR``: every BFT layer of the model, with what the
    graph lets the epilogue fold, as weight images plus ``network.json``."""
    from bfly.gen.files import write_files
    from bfly.sw.export import export_network, MANIFEST_NAME
    from bfly.sw.network import ModelError
    from pathlib import Path
    engine = _engine_args(args)
    model, names, digits = _load_model(args.model, args.weights)
    calib = _calibration(args.calib, (1, 8, 8) if digits else None)
    spec = args.model
    if not digits:
        path, _, cls = spec.rpartition(":")
        spec = f"{Path(path).resolve()}:{cls}"
    else:
        spec = str(Path(spec).resolve())
    try:
        export = export_network(model, calib, model_spec=spec,
                                weights=str(Path(args.weights).resolve()) if args.weights else None,
                                names=names, **engine)
        if digits:          # (the example's own test set: its accuracies go in the manifest)
            from bfly.examples.digits import evaluate, load_digits_split, quantized_accuracy
            _, _, xte, yte = load_digits_split()
            images = {l["image"].removesuffix(".bfly"): export.image(l) for l in export.layers}
            export.manifest["digits_test_accuracy"] = {"float": evaluate(model, xte, yte),
                                                       "emulated": quantized_accuracy(model, images)}
        files = export.files()
    except ModelError as e:
        raise UserError(str(e))
    write_files(args.output, files)
    m = export.manifest
    if not m["traced"]:
        print(f"the model could not be traced ({m['trace_error']}): every layer is exported alone, "
              f"what follows it runs on the host")
    for layer in export.layers:
        img = export.image(layer)
        sat = max(s["saturation_rate"] for s in img.report["stages"])
        folded = ", ".join(layer["folded"]) or "nothing"
        print(f"  {layer['image']:<18} {layer['name']}: {layer['c_in']} -> {layer['c_out']}, engine "
              f"{layer['engine']}, folded {folded}; final SQNR {layer['final_sqnr_db']:.1f} dB, "
              f"worst stage saturation {sat:.2%}")
        if layer["on_host_after"]:
            print(f"  {'':<18} on the host after it: {layer['on_host_after']}")
    if digits:
        acc = m["digits_test_accuracy"]
        print(f"test accuracy: float {acc['float']:.2%}, every BFT block {args.data_bits}-bit through "
              f"the golden model {acc['emulated']:.2%}")
    print(f"wrote {len(export.images)} weight images for {len(m['engines'])} engine "
          f"configuration(s) and {MANIFEST_NAME} to {args.output}")
    return 0


def cmd_evaluate(args):
    """``bfly evaluate DIR --data NPZ``: the exported network's accuracy in float, with the
    golden model, and through a board (``--port``), with every block's output compared."""
    import numpy as np
    import time
    from bfly.sw.export import load_export
    from bfly.sw.infer import accelerated_model, EmulatedBackend, BoardBackend, evaluate
    from bfly.sw.network import ModelError
    try:
        export = load_export(args.network)
    except ModelError as e:
        raise UserError(str(e))
    m = export.manifest
    spec = args.model or m.get("model")
    if spec is None:
        raise UserError(f"{args.network}: the manifest names no model; give --model")
    model, _, _ = _load_model(spec, args.weights if args.model else m.get("weights"))
    x, y = _dataset(args.data, m["input_shape"])
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    report = {"images": int(len(x))}
    acc_float, _ = evaluate(model, x, y)
    emu_trace = []
    try:
        emu = accelerated_model(model, export, EmulatedBackend(), trace=emu_trace)
    except ModelError as e:
        raise UserError(str(e))
    t0 = time.perf_counter()
    acc_emu, pred_emu = evaluate(emu, x, y, batch=args.batch)
    report.update(float_accuracy=acc_float, emulated_accuracy=acc_emu,
                  emulated_images_per_s=len(x) / (time.perf_counter() - t0))
    print(f"{len(x)} images: float accuracy {acc_float:.2%}, golden model {acc_emu:.2%}")
    if args.port:
        from bfly.sw.driver import DriverError, LinkError
        board = _connect_board(args)
        try:
            backend = BoardBackend(board, export)
            board_trace = []
            run = accelerated_model(model, export, backend, trace=board_trace)
            t0 = time.perf_counter()
            acc_board, pred_board = evaluate(run, x, y, batch=args.batch)
            seconds = time.perf_counter() - t0
        except (DriverError, LinkError) as e:
            raise UserError(f"{args.port}: {e}")
        mismatched = [name for (name, qa, ya), (_, qb, yb) in zip(emu_trace, board_trace)
                      if not (np.array_equal(qa, qb) and np.array_equal(ya, yb))]
        exact = not mismatched and len(emu_trace) == len(board_trace) and np.array_equal(pred_emu, pred_board)
        report.update(board_accuracy=acc_board, board_images_per_s=len(x) / seconds,
                      board_weight_loads=backend.loads, bit_exact=exact,
                      block_calls=len(board_trace))
        print(f"  through the board: accuracy {acc_board:.2%}, {len(x) / seconds:.1f} images/s, "
              f"{len(board_trace)} block runs, {backend.loads} weight loads")
        if exact:
            print("PASS every block's output on the board is bit-exact with the golden model")
        else:
            print(f"FAIL the board differs from the golden model in "
                  f"{', '.join(sorted(set(mismatched))) or 'the predictions'}")
    if args.output:
        from bfly.gen.files import write_files
        import json
        write_files(args.output, {"evaluate.json": json.dumps(report, indent=2) + "\n"})
    return 0 if report.get("bit_exact", True) else 1


def _dataset(path, input_shape):
    """``(x, y)`` from an ``.npz`` with arrays ``x`` (inputs shaped ``(N, *input_shape)``) and
    ``y`` (integer labels)."""
    import numpy as np
    try:
        z = np.load(path, allow_pickle=False)
        if not hasattr(z, "files"):
            raise UserError(f"{path}: a single array; expected an .npz archive with arrays x and y")
        with z:
            missing = [k for k in ("x", "y") if k not in z.files]
            if missing:
                raise UserError(f"{path}: the archive has no array {', '.join(missing)} (it has "
                                f"{', '.join(z.files) or 'none'})")
            x, y = z["x"], z["y"]
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}")
    except ValueError:
        raise UserError(f"{path}: not an .npz archive of arrays")
    if not (np.issubdtype(x.dtype, np.number) and np.issubdtype(y.dtype, np.number)) or len(x) == 0:
        raise UserError(f"{path}: x must hold at least one numeric input, y its labels")
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise UserError(f"{path}: x is shaped {x.shape}; the network was exported for inputs "
                        f"(N, {', '.join(map(str, input_shape))})")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{path}: y must be {len(x)} integer labels, not {y.dtype} {y.shape}")
    if not np.isfinite(x).all():
        raise UserError(f"{path}: x holds NaN or infinite values")
    return x.astype(np.float32), y


def _connect_board(args):
    from bfly.sw.driver import Board, SerialTransport, DriverError, LinkError
    from .common import port_baud
    try:
        return Board(SerialTransport(args.port, port_baud(args), args.timeout),
                     progress=sys.stderr.isatty())
    except (LinkError, DriverError) as e:
        raise UserError(f"{args.port}: {e}")


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

    p = sub.add_parser("export",
                       help="quantize every BFT layer of a trained model: weight images and network.json")
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
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("evaluate", help="accuracy of an exported network: float, golden model, and "
                                        "through a board (--port), block outputs compared")
    p.add_argument("network", help="the directory bfly export wrote (or its network.json)")
    p.add_argument("--data", required=True, metavar="NPZ", help="test set: arrays x (inputs) and y (labels)")
    p.add_argument("--model", help="the model, if not the one the manifest names")
    p.add_argument("--weights", metavar="PT", help="with --model FILE.py:CLASS: its state_dict")
    p.add_argument("--port", help="a board (pyserial URL, e.g. socket://127.0.0.1:4321): run "
                                  "every BFT block on it")
    add_link_args(p)
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N images")
    p.add_argument("--batch", type=positive_int, default=64, help="images per forward pass (default 64)")
    p.add_argument("-o", "--output", metavar="DIR", type=output_path, help="write evaluate.json here")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("inspect", help="show a weight image: configuration, shifts, SQNR, saturation")
    p.add_argument("image", help="a .bfly weight image")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_inspect)
