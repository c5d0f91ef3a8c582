"""The attribute editor (`stargan edit`): a local web page over `translate`.

:mod:`stargan.editor.session` is the model side (no web framework: loading, the input's attribute reading,
page settings -> translate options, translation); :mod:`stargan.editor.app` builds the Gradio page on it.
Nothing is imported here, so ``import stargan.editor.session`` needs no Gradio.
"""
