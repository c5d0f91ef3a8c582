from pathlib import Path

from setuptools import find_packages, setup

version = {}
exec(Path("common/version.py").read_text(), version)

setup(
    name="stargan-cyclegan",
    version=version["__version__"],
    description="Image-to-image translation: faithful CycleGAN, StarGAN and pix2pix, plus tools.",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["common", "common.*", "cyclegan", "cyclegan.*", "pix2pix", "pix2pix.*", "stargan",
                                    "stargan.*"]),
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "numpy",
        "pillow",
        "click>=8.0",
        "tensorboard",
        "pyyaml",
        "tqdm",
        "safetensors>=0.4",
    ],
    extras_require={"dev": ["pytest", "ruff", "playwright>=1.40"],  # playwright drives the editor's browser test
                    # `stargan edit`: the attribute editor's web page.
                    "app": ["gradio>=6.0,<7"],
                    # `stargan export --format onnx`: the torch.export-based exporter (torch >= 2.6) needs onnxscript.
                    "export": ["torch>=2.6", "onnx>=1.17", "onnxscript>=0.7", "onnxruntime>=1.20"]},
    entry_points={"console_scripts": ["stargan=stargan.cli:main"]},
)
