"""LabelSpace: single vs mask-vector label layouts, loss slicing, cls masks, grid targets."""
import torch

from common.labels.schema import LabelSchema
from common.labels.space import LabelSpace
from common.losses import grouped_cls_loss

CELEBA = LabelSchema.from_attrs(["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"],
                                [["Black_Hair", "Blond_Hair", "Brown_Hair"]])
RAFD = LabelSchema.from_attrs(["angry", "happy", "sad"], [["angry", "happy", "sad"]])


def test_single_dataset_has_no_mask():
    space = LabelSpace(["celeba"], [CELEBA])
    assert space.g_dim == space.d_dim == 5
    y = torch.tensor([[1.0, 0, 0, 1, 0]])
    assert torch.equal(space.g_label(0, y), y)


def test_mask_vector_layout_and_loss_touches_only_own_slice():
    space = LabelSpace(["celeba", "rafd"], [CELEBA, RAFD])
    assert (space.g_dim, space.d_dim) == (5 + 3 + 2, 8)
    y_rafd = torch.tensor([[0.0, 1, 0], [0, 0, 1]])
    g = space.g_label(1, y_rafd)
    assert g.tolist()[0] == [0, 0, 0, 0, 0, 0, 1, 0, 0, 1]  # zeros for CelebA, RaFD block, mask [0, 1]
    logits = torch.randn(2, space.d_dim, requires_grad=True)
    loss, _ = grouped_cls_loss(logits, g, space.cls_slices(1), sample_mask=space.cls_mask(1, g))
    loss.backward()
    assert torch.all(logits.grad[:, :5] == 0)  # CelebA logits untouched by a RaFD batch
    assert torch.all(logits.grad[:, 5:].abs().sum(dim=1) > 0)


def test_all_zero_exclusive_block_is_masked_out():
    space = LabelSpace(["celeba"], [CELEBA])
    y = torch.tensor([[0.0, 0, 0, 1, 1], [0, 1, 0, 0, 1]])  # first face: no hair colour
    mask = space.cls_mask(0, y)
    assert mask.tolist() == [[False, True, True], [True, True, True]]


def test_grid_targets_cover_own_and_other_datasets():
    space = LabelSpace(["celeba", "rafd"], [CELEBA, RAFD])
    y = torch.tensor([[1.0, 0, 0, 1, 0]])
    columns = space.grid_targets(0, y)
    titles = [t for t, _ in columns]
    assert titles == ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young", "rafd:angry", "rafd:happy",
                      "rafd:sad"]
    blond = dict(columns)["Blond_Hair"][0].tolist()
    assert blond == [0, 1, 0, 1, 0, 0, 0, 0, 1, 0]  # exclusive: other hair colours cleared, mask = celeba
    sad = dict(columns)["rafd:sad"][0].tolist()
    assert sad == [0, 0, 0, 0, 0, 0, 0, 1, 0, 1]
    assert space.dataset_for(["happy"]) == 1
