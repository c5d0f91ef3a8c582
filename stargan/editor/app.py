"""The editor's web page: a Gradio app over :class:`stargan.editor.session.EditorSession`.

Upload an image; the page shows D's reading of its attributes and sets the attribute controls to it (an
exclusive group as one choice, binary attributes as toggles); changing a control, the strength or a family
option translates again. The result sits beside the input with a PNG download and the `stargan translate`
line that writes the same file. Errors reach the page as one-line messages (``gr.Error``), never as a trace.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.errors import UserError
from stargan.editor.session import KEEP, MAX_SIDE, MAX_UPLOAD_BYTES, EditorSession, Reading, check_image

try:
    import gradio as gr
except ImportError as err:  # an optional extra: the CLI turns this into one line and exit status 2
    raise UserError(f'the editor needs Gradio ({err}); install it with: pip install -e ".[app]"') from None

log = logging.getLogger(__name__)

IMAGE_HEIGHT = 320
# Small images fill their box with sharp pixels (a 32 px face is otherwise a speck), large ones fit in it.
CSS = ("#input-image img, #result-image img "
       "{width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated;}")
# Gradio keeps uploads and results in its cache: look every 10 minutes, drop what is older than an hour.
CACHE_CLEANUP = (600, 3600)


def _page_errors(fn: Callable) -> Callable:
    """Run a page handler; a UserError or any failure becomes a one-line message on the page (the server log
    keeps the trace of unexpected ones)."""
    @functools.wraps(fn)
    def handler(*args: Any) -> Any:
        try:
            return fn(*args)
        except gr.Error:
            raise
        except UserError as err:
            raise gr.Error(str(err), print_exception=False) from None
        except Exception as err:
            log.exception("editor: %s failed", fn.__name__)
            message = " ".join(str(err).split())
            raise gr.Error(f"{err.__class__.__name__}: {message}", print_exception=False) from None
    return handler


def _uploaded(payload: Any) -> tuple[str, str] | None:
    """(file, name the user gave it) of an image component's raw upload; None when it was cleared."""
    if not payload:
        return None
    path = payload.get("path") if isinstance(payload, dict) else None
    if not path:
        raise UserError("the image arrived without a file; upload it as a file")
    return path, payload.get("orig_name") or Path(path).name


def _as_named(err: UserError, path: str, name: str) -> UserError:
    """The error with the upload's own name in place of Gradio's cache path."""
    return UserError(str(err).replace(path, name))


def _group_title(group: Any) -> str:
    """An exclusive group's name for people: its members joined by '|' (the name a schema gives a group it was
    not told the name of) reads as 'A / B / C'."""
    return " / ".join(group.names) if group.name == "|".join(group.names) else group.name


def _reading_table(session: EditorSession, dataset: int, reading: Reading) -> str:
    schema = session.schema(dataset)
    title = "What the model reads in the input"
    if session.labels.n > 1:
        title += f" (dataset {session.dataset_names[dataset]})"
    if reading.confidence is None:
        return (f"**{title}**: nothing; the checkpoint has no discriminator, so every attribute starts at 0 "
                "(as `translate` does) and only the ones you set mean something.")
    rows = [f"**{title}** (its discriminator's classifier)", "", "| attribute | reads | probability |",
            "|---|---|---|"]
    for group, start, _ in schema.spans():
        for offset, name in enumerate(group.names):
            named = group.kind == "exclusive" and _group_title(group) == group.name
            label = f"{name} ({group.name})" if named else name
            label = label.replace("|", "\\|")  # a pipe would end the table cell
            mark = "yes" if reading.decided[start + offset] > 0.5 else "no"
            rows.append(f"| {label} | {mark} | {reading.confidence[start + offset]:.2f} |")
    return "\n".join(rows)


def _header(session: EditorSession) -> str:
    lines = [f"## {session.family.title} editor",
             f"Model `{session.source}` on {session.device.type}. Upload an image (any size up to {MAX_SIDE} px a "
             f"side and {MAX_UPLOAD_BYTES // 2**20} MB)"]
    if session.family.label_conditioned:
        lines[-1] += ", set attributes and the strength"
    lines[-1] += (". The result is the PNG `stargan translate` writes for the command shown below it. Images go "
                  "to this server only.")
    return "\n\n".join(lines)


def build_app(session: EditorSession) -> gr.Blocks:
    """The page for ``session``'s model (not started: see :func:`serve`)."""
    labels = session.labels
    n_datasets = labels.n if labels is not None else 0
    with gr.Blocks(title=f"{session.family.title} editor", analytics_enabled=False,
                   delete_cache=CACHE_CLEANUP) as blocks:
        gr.Markdown(_header(session))
        upload = gr.State(None)  # {"path", "name", "readings"} of the current input
        with gr.Row():
            with gr.Column():
                # filepath + no mode: the file as uploaded, read by the library's own loader, as translate does.
                image_in = gr.Image(label="Input", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                    height=IMAGE_HEIGHT, buttons=["fullscreen"], elem_id="input-image")
                reading_md = gr.Markdown(elem_id="reading")
            with gr.Column():
                image_out = gr.Image(label="Result", type="filepath", format="png", interactive=False,
                                     height=IMAGE_HEIGHT, buttons=["fullscreen"], elem_id="result-image")
                download = gr.DownloadButton("Download PNG", interactive=False, elem_id="download")
                command = gr.Textbox(label="The same PNG from the command line", interactive=False,
                                     elem_id="command")
        with gr.Column():
            dataset = (gr.Radio(list(labels.names), value=labels.names[0], label="Dataset (whose labels to set)",
                                elem_id="dataset") if n_datasets > 1 else gr.State(None))
            groups, controls = [], []
            for i in range(n_datasets):
                with gr.Group(visible=i == 0) as group_box:
                    for j, group in enumerate(session.schema(i).groups):
                        eid = f"attr-{i}-{j}"
                        if group.kind == "binary":
                            controls.append(gr.Checkbox(label=group.names[0], elem_id=eid))
                        else:
                            controls.append(gr.Radio([KEEP, *group.names], value=KEEP, label=_group_title(group),
                                                     elem_id=eid))
                groups.append(group_box)
            strength = (gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Strength",
                                  info="0 = the input's own labels, 1 = the target, above 1 exaggerates",
                                  elem_id="strength") if session.has_strength else gr.State(1.0))
            extras = []
            for control in session.option_controls:
                if control.choices is not None:
                    extras.append(gr.Radio(list(control.choices), value=control.default, label=control.flag,
                                           info=control.help, elem_id=f"option-{control.name}"))
                elif control.is_flag:
                    extras.append(gr.Checkbox(value=bool(control.default), label=control.flag, info=control.help,
                                              elem_id=f"option-{control.name}"))
                else:
                    extras.append(gr.Textbox(value="" if control.default is None else str(control.default),
                                             label=control.flag, info=control.help,
                                             elem_id=f"option-{control.name}"))
            run = gr.Button("Translate", variant="primary", elem_id="translate")

        def dataset_index(value: Any) -> int:
            return session.dataset_names.index(value) if n_datasets > 1 else 0

        def control_values(i: int, values: tuple) -> list:
            if labels is None:
                return []
            start = sum(len(session.schema(k).groups) for k in range(i))
            return list(values[start:start + len(session.schema(i).groups)])

        @_page_errors
        def on_upload(payload: Any, dataset_value: Any):
            file = _uploaded(payload)
            if file is None:
                raise UserError("no image arrived; upload an image file")
            path, name = file
            try:
                check_image(path, name)
                readings = session.read(path)
            except UserError as err:
                raise _as_named(err, path, name) from None
            values = [v for i, r in enumerate(readings) for v in session.initial_values(i, r)]
            table = _reading_table(session, dataset_index(dataset_value), readings[dataset_index(dataset_value)]) \
                if readings else ""
            return [{"path": path, "name": name, "readings": readings}, table, *values]

        def on_clear():
            return [None, "", None, gr.update(value=None, interactive=False), ""]

        @_page_errors
        def on_dataset(state: Any, dataset_value: Any):
            i = dataset_index(dataset_value)
            table = _reading_table(session, i, state["readings"][i]) if state else ""
            return [table, *[gr.update(visible=k == i) for k in range(len(groups))]]

        @_page_errors
        def on_translate(state: Any, dataset_value: Any, strength_value: Any, *values: Any):
            if not state:
                gr.Warning("Upload an image first.")
                return [gr.update(), gr.update(), gr.update()]
            i = dataset_index(dataset_value)
            extra = {c.name: v for c, v in zip(session.option_controls, values[len(controls):])}
            reading = state["readings"][i] if state["readings"] else None
            options = session.options(i, control_values(i, values[:len(controls)]), reading,
                                      float(strength_value), extra)
            try:
                image = session.translate(state["path"], options)
            except UserError as err:
                raise _as_named(err, state["path"], state["name"]) from None
            result = str(session.save_result(image, state["name"]))
            return [result, gr.update(value=result, interactive=True), session.command(state["name"], options)]

        translate_inputs = [upload, dataset, strength, *controls, *extras]
        translate_outputs = [image_out, download, command]
        queue = {"concurrency_limit": 1, "concurrency_id": "model"}
        # preprocess=False: the raw upload, so that a file PIL cannot open reaches our own check and message.
        # A new upload first clears the last one's state and result, so a refused file leaves nothing stale.
        image_in.upload(on_clear, None, [upload, reading_md, *translate_outputs], **queue).then(
            on_upload, [image_in, dataset], [upload, reading_md, *controls], preprocess=False, **queue).success(
            on_translate, translate_inputs, translate_outputs, **queue)
        image_in.clear(on_clear, None, [upload, reading_md, *translate_outputs], **queue)
        if n_datasets > 1:
            dataset.input(on_dataset, [upload, dataset], [reading_md, *groups], **queue).success(
                on_translate, translate_inputs, translate_outputs, **queue)
        for component in (*controls, *extras):
            component.input(on_translate, translate_inputs, translate_outputs, **queue)
        if session.has_strength:
            strength.release(on_translate, translate_inputs, translate_outputs, **queue)
        run.click(on_translate, translate_inputs, translate_outputs, **queue)
    return blocks


def serve(blocks: gr.Blocks, host: str, port: int) -> str:
    """Start the page on ``host:port`` without blocking; returns its URL. A port in use is a UserError."""
    blocks.queue(default_concurrency_limit=1)
    try:
        _, url, _ = blocks.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True,
                                  share=False, inbrowser=False, show_error=False, max_file_size=MAX_UPLOAD_BYTES,
                                  footer_links=[], ssr_mode=False, mcp_server=False, css=CSS)
    except OSError as err:
        # Gradio's own wording for a taken port speaks of its environment variables; say it in CLI terms.
        reason = "the port is in use" if "empty port" in str(err) else " ".join(str(err).split())
        raise UserError(f"--host {host} --port {port}: cannot serve there ({reason}); choose another --port "
                        "or --host") from None
    return url
