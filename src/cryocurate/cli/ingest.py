"""``cryocurate ingest run|annotation`` and ``cryocurate objects set``: cryo-ET data in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cryocurate.cli import console

app = typer.Typer(
    help="Add tomography runs and annotations to a portal root.", no_args_is_help=True
)
objects_app = typer.Typer(
    help="Per-object settings (radius for scoring picks).", no_args_is_help=True
)

Root = Annotated[Path, typer.Argument(help="The portal root.", show_default=False)]


@app.command("run")
def run_command(
    root: Root,
    dataset: Annotated[int, typer.Option("--dataset", "-d", help="The dataset's id.")],
    paths: Annotated[
        list[Path],
        typer.Argument(help="The tomogram MRC; optionally its tilt series MRC and .rawtlt."),
    ],
    run_name: Annotated[
        str | None, typer.Option("--run-name", help="Default: the tomogram's file name.")
    ] = None,
    voxel_spacing: Annotated[
        float | None, typer.Option("--voxel-spacing", help="Å; default: the MRC header's.")
    ] = None,
    tilt_series: Annotated[
        Path | None, typer.Option("--tilt-series", help="Which MRC is the tilt series.")
    ] = None,
    quality: Annotated[
        int | None, typer.Option("--quality", min=1, max=5, help="Tilt-series quality 1–5.")
    ] = None,
    microscope: Annotated[
        str | None, typer.Option("--microscope", help="Manufacturer: FEI, TFS, JEOL…")
    ] = None,
    microscope_model: Annotated[str | None, typer.Option("--microscope-model")] = None,
    camera: Annotated[str | None, typer.Option("--camera", help="Camera manufacturer.")] = None,
    camera_model: Annotated[str | None, typer.Option("--camera-model")] = None,
    voltage: Annotated[
        float | None, typer.Option("--voltage", help="Acceleration voltage in volts.")
    ] = None,
    tilt_step: Annotated[float | None, typer.Option("--tilt-step", help="Degrees.")] = None,
    total_dose: Annotated[
        float | None, typer.Option("--total-dose", help="Total flux, e⁻/Å².")
    ] = None,
    reconstruction_method: Annotated[
        str | None, typer.Option("--reconstruction-method", help="WBP, SIRT, SART…")
    ] = None,
    reconstruction_software: Annotated[
        str | None, typer.Option("--reconstruction-software")
    ] = None,
) -> None:
    """Add a tomography run: the tomogram (with an OME-Zarr pyramid and key photos), and
    optionally its tilt series, angles and acquisition metadata.

    Example: cryocurate ingest run ./portal -d 10000 TS_026.mrc TS_026.st TS_026.rawtlt
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from cryocurate.ingest.tomography import Acquisition, TomogramFields, ingest_run, sort_paths
    from cryocurate.portal import Portal

    files = sort_paths(paths, tilt_series)
    acquisition = Acquisition(
        microscope_manufacturer=microscope,
        microscope_model=microscope_model,
        camera_manufacturer=camera,
        camera_model=camera_model,
        acceleration_voltage=voltage,
        tilt_step=tilt_step,
        total_flux=total_dose,
        tilt_series_quality=quality,
    )
    fields = TomogramFields(
        reconstruction_method=reconstruction_method,
        reconstruction_software=reconstruction_software,
    )
    with (
        Portal.open(root) as portal,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console.err,
            transient=True,
            disable=not console.err.is_terminal,
        ) as bar,
    ):
        task = bar.add_task("OME-Zarr pyramid", total=None)

        def show(_what: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = ingest_run(
            portal,
            dataset,
            files,
            run_name=run_name,
            voxel_spacing=voxel_spacing,
            acquisition=acquisition,
            tomogram=fields,
            progress=show,
        )
    if result.renamed_from is not None:
        console.err.print(
            f"note: run name {result.renamed_from!r} is not a safe folder name; "
            f"stored as {result.run_name!r}",
            markup=False,
        )
    x, y, z = result.size_xyz
    ts = f", tilt series {result.tilt_series_id}" if result.tilt_series_id else ""
    console.out.print(
        f"Run {result.run_id} ({result.run_name}) in dataset {result.dataset_id}: tomogram "
        f"{result.tomogram_id}, {x}×{y}×{z} at {result.voxel_spacing:g} Å{ts}.",
        markup=False,
    )


@app.command("annotation")
def annotation_command(
    root: Root,
    run: Annotated[int, typer.Option("--run", help="The run's id.")],
    object_name: Annotated[str, typer.Option("--object-name", help="e.g. ribosome")],
    object_id: Annotated[str, typer.Option("--object-id", help="e.g. GO:0022626")],
    method_type: Annotated[
        str, typer.Option("--method-type", help="manual, automated, hybrid or simulated")
    ],
    method: Annotated[str, typer.Option("--method", help="How it was made, in words.")],
    file: Annotated[
        Path, typer.Argument(help="ndjson, RELION .star, copick .json, .csv, or a mask .mrc")
    ],
    ground_truth: Annotated[
        bool, typer.Option("--ground-truth", help="Endorsed for training and validation.")
    ] = False,
    voxel_spacing: Annotated[
        float | None, typer.Option("--voxel-spacing", help="Whose voxel coordinates (Å).")
    ] = None,
    file_format: Annotated[
        str | None, typer.Option("--format", help="ndjson, star, copick, csv or mrc.")
    ] = None,
    software: Annotated[str | None, typer.Option("--software")] = None,
    author: Annotated[
        list[str] | None, typer.Option("--author", help="Repeat for several.")
    ] = None,
) -> None:
    """Add an annotation to a tomography run, validated, with precision and recall against
    the run's ground truth of the same object.

    Example: cryocurate ingest annotation ./portal --run 3 --object-name ribosome
    --object-id GO:0022626 --method-type automated --method "template matching" picks.star
    """
    from cryocurate.ingest.annotations import AnnotationSpec, ingest_annotation
    from cryocurate.portal import Portal

    spec = AnnotationSpec(
        object_name=object_name,
        object_id=object_id,
        method_type=method_type,
        method=method,
        ground_truth=ground_truth,
        software=software,
        authors=list(author or []),
    )
    with Portal.open(root) as portal:
        result = ingest_annotation(
            portal, run, file, spec, voxel_spacing=voxel_spacing, file_format=file_format
        )
    scored = (
        f" Precision {result.precision:.1f} %, recall {result.recall:.1f} %."
        if result.precision is not None and result.recall is not None
        else ""
    )
    rescored = (
        f" Re-scored annotation(s) {', '.join(map(str, result.rescored))}."
        if result.rescored
        else ""
    )
    console.out.print(
        f"Annotation {result.annotation_id}: {result.shape_type}, "
        f"{result.object_count} object(s).{scored}{rescored}",
        markup=False,
    )


@objects_app.command("set")
def objects_set(
    root: Root,
    object_id: Annotated[str, typer.Argument(help="e.g. GO:0022626")],
    radius: Annotated[float | None, typer.Option("--radius", help="Object radius, Å.")] = None,
    match_distance: Annotated[
        float | None,
        typer.Option("--match-distance", help="Å; default half the radius."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="The object's name.")] = None,
) -> None:
    """Set how picks of an object are matched to ground truth.

    Example: cryocurate objects set ./portal GO:0022626 --name ribosome --radius 150
    """
    from cryocurate.ingest.objects import set_object
    from cryocurate.portal import Portal

    with Portal.open(root) as portal:
        rescored = set_object(
            portal, object_id, radius_a=radius, match_distance_a=match_distance, object_name=name
        )
    console.out.print(
        f"Object {object_id} updated; {rescored} annotation(s) re-scored.", markup=False
    )


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="ingest")
    parent.add_typer(objects_app, name="objects")
