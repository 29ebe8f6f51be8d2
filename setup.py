# Only to hand cffi its build script; everything else is in setup.cfg.
from setuptools import setup

setup(cffi_modules=["csrc/smpvm_build.py:ffibuilder"])
