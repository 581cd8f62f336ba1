"""Importing pytorch-grad-cam without torchvision, for test_cam_references.py.

pytorch-grad-cam (``grad-cam`` on PyPI) imports torchvision at module level, for
helpers that computing a CAM never calls: ``Compose``, ``Normalize`` and ``ToTensor``
(image preprocessing, pytorch_grad_cam/utils/image.py), ``resize`` (the SESS method,
sess.py) and ``torchvision.ops.box_iou`` (detection targets, model_targets.py, looked
up only when such a target is called). torchvision wheels are built against one torch
release each and do not import beside the torch the tests pin, so while
pytorch_grad_cam is imported these minimal stand-in modules take torchvision's place;
each stand-in raises if it is ever called. The stand-ins leave ``sys.modules`` when the
import is done, so no other test sees them.
"""

from __future__ import annotations

import importlib
import sys
import types

_STANDIN_NAMES = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")


def _unused(name: str):
    def standin(*args, **kwargs):
        raise RuntimeError(
            f"torchvision.{name} is a stand-in (tests/peer_stubs.py): the CAM references never call it."
        )

    standin.__name__ = name.rsplit(".", 1)[-1]
    return standin


def _torchvision_standins() -> dict[str, types.ModuleType]:
    torchvision = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    for name in ("Compose", "Normalize", "ToTensor"):
        setattr(transforms, name, _unused(f"transforms.{name}"))
    functional.resize = _unused("transforms.functional.resize")
    transforms.functional = functional
    torchvision.transforms = transforms
    torchvision.ops = types.SimpleNamespace(box_iou=_unused("ops.box_iou"))
    return dict(zip(_STANDIN_NAMES, (torchvision, transforms, functional)))


def import_pytorch_grad_cam() -> types.ModuleType:
    """``pytorch_grad_cam``, imported with torchvision stand-ins (then removed again).

    Raises ImportError when grad-cam or one of its other import-time needs (opencv,
    ttach, tqdm, scikit-learn, scipy) is missing.
    """
    if "pytorch_grad_cam" in sys.modules:
        return sys.modules["pytorch_grad_cam"]
    saved = {name: sys.modules.get(name) for name in _STANDIN_NAMES}
    sys.modules.update(_torchvision_standins())
    try:
        return importlib.import_module("pytorch_grad_cam")
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
