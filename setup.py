from pathlib import Path

from setuptools import find_packages, setup

version = {}
exec(Path("common/version.py").read_text(), version)

setup(
    name="stargan-cyclegan",
    version=version["__version__"],
    description="Unpaired, multi-domain image-to-image translation: faithful CycleGAN and StarGAN, plus tools.",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["common", "common.*", "cyclegan", "cyclegan.*", "stargan", "stargan.*"]),
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "numpy",
        "pillow",
        "click>=8.0",
        "tensorboard",
        "pyyaml",
        "tqdm",
    ],
    extras_require={"dev": ["pytest", "ruff"]},
    entry_points={"console_scripts": ["stargan=stargan.cli:main"]},
)
