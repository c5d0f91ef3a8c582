import pytest
import torch

from common.errors import UserError
from common.labels.groups import AccuracyCounter, attribute_hits, logits_to_labels
from common.labels.schema import Group, LabelSchema, SchemaError
from common.labels.space import LabelSpace, MultiSchema
from common.labels.targets import apply_strength, random_targets, shuffle_targets, single_changes, single_group_targets
from stargan.translate import parse_target, parse_target_vector, predict_labels

HAIR = ["Black_Hair", "Blond_Hair", "Brown_Hair"]
ATTRS = HAIR + ["Male", "Young"]


@pytest.fixture
def celeba():
    return LabelSchema.from_attrs(ATTRS, {"hair": HAIR})


def t(*v):
    return torch.tensor(v, dtype=torch.float32)


def valid_targets(schema, y):
    """Per row: every value 0 or 1, and exactly one member set in each exclusive group (what every target the
    library invents must be, whatever the group's loss)."""
    ok = torch.ones(y.shape[:-1], dtype=torch.bool)
    for g, start, stop in schema.spans():
        block = y[..., start:stop]
        ok &= ((block == 0) | (block == 1)).all(dim=-1)
        if g.kind == "exclusive":
            ok &= block.sum(dim=-1) == 1
    return ok


# -- schema ------------------------------------------------------------------------------------------------
def test_schema_shape_and_slices(celeba):
    assert celeba.names == tuple(ATTRS)
    assert celeba.dim == 5
    assert celeba.slices() == [("exclusive", 0, 3), ("binary", 3, 4), ("binary", 4, 5)]
    assert [g.name for g in celeba.groups] == ["hair", "Male", "Young"]
    assert celeba.index("Male") == 3
    assert [(a, b) for g, a, b in celeba.spans() if "Brown_Hair" in g.names] == [(0, 3)]
    assert "exclusive" in celeba.describe()


def test_schema_default_all_binary_and_list_groups():
    s = LabelSchema.from_attrs(["A", "B", "C", "D"])
    assert s.slices() == [("binary", i, i + 1) for i in range(4)]
    s = LabelSchema.from_attrs(["A", "B", "C", "D"], [["B", "C"]])
    assert s.slices() == [("binary", 0, 1), ("exclusive", 1, 3), ("binary", 3, 4)]
    assert s.groups[1].name == "B|C"


def test_schema_roundtrip(celeba):
    d = celeba.to_dict()
    assert d["groups"][0] == {"name": "hair", "kind": "exclusive", "names": HAIR, "loss": "ce"}
    assert d["groups"][1] == {"name": "Male", "kind": "binary", "names": ["Male"], "loss": "bce"}
    assert LabelSchema.from_dict(d) == celeba
    # "loss" is optional on input (defaults by kind).
    for g in d["groups"]:
        del g["loss"]
    assert LabelSchema.from_dict(d) == celeba
    bce = LabelSchema.from_attrs(ATTRS, {"hair": HAIR}, exclusive_loss="bce")
    assert LabelSchema.from_dict(bce.to_dict()) == bce != celeba


def test_exclusive_bce_group_loss_slices_vs_targets():
    # Official CelebA: hair colours are exclusive for targets, but D's classifier treats them as BCE.
    s = LabelSchema.from_attrs(ATTRS, [HAIR], exclusive_loss="bce")
    assert s.groups[0].kind == "exclusive" and s.groups[0].loss == "bce"
    assert s.slices() == [("binary", 0, 3), ("binary", 3, 4), ("binary", 4, 5)]
    assert [(g.name, a, b) for g, a, b in s.spans()] == [("Black_Hair|Blond_Hair|Brown_Hair", 0, 3),
                                                         ("Male", 3, 4), ("Young", 4, 5)]
    y = random_targets(s, 64, torch.Generator().manual_seed(0))
    assert (y[:, :3].sum(1) == 1).all() and valid_targets(s, y).all()
    cols = dict(single_changes(s, t(1, 1, 0, 0, 0)))
    assert cols["Brown_Hair"].tolist() == [0, 0, 1, 0, 0]
    assert parse_target(s, "Blond_Hair=1", t(0, 0, 0, 0, 0)).tolist() == [0, 1, 0, 0, 0]


@pytest.mark.parametrize(
    "attrs, exclusive, match",
    [
        (["A", "A"], None, "duplicate"),
        ([], None, "no attributes"),
        (["A", "B"], [["A", "X"]], "unknown attribute 'X'"),
        (["A", "B"], [["A"]], "at least 2"),
        (["A", "B", "C"], [["A", "C"]], "adjacent"),
        (["A", "B", "C"], [["A", "B"], ["B", "C"]], "more than one"),
        (["A,B"], None, "must not contain"),
        (["A=1"], None, "must not contain"),
        ([""], None, "non-empty"),
    ],
)
def test_schema_validation(attrs, exclusive, match):
    with pytest.raises(ValueError, match=match):
        LabelSchema.from_attrs(attrs, exclusive)


def test_group_and_schema_validation_errors():
    with pytest.raises(ValueError, match="exactly one"):
        Group("g", "binary", ("A", "B"))
    with pytest.raises(ValueError, match="at least 2"):
        Group("g", "exclusive", ("A",))
    with pytest.raises(ValueError, match="kind"):
        Group("g", "multi", ("A",))
    with pytest.raises(ValueError, match="loss must be 'bce' for a binary group"):
        Group("A", "binary", ("A",), "ce")
    with pytest.raises(ValueError, match="loss"):
        Group.exclusive("g", ["A", "B"], "mse")
    with pytest.raises(ValueError, match="at least one group"):
        LabelSchema(())
    with pytest.raises(ValueError, match="appears twice"):
        LabelSchema((Group.binary("A"), Group.exclusive("g", ["A", "B"])))
    with pytest.raises(ValueError, match="duplicate group"):
        LabelSchema((Group.exclusive("g", ["A", "B"]), Group.exclusive("g", ["C", "D"])))
    with pytest.raises(ValueError, match="groups"):
        LabelSchema.from_dict({"nope": 1})
    with pytest.raises(ValueError, match="keys name, kind, names"):
        LabelSchema.from_dict({"groups": [{"name": "A"}]})
    with pytest.raises(ValueError, match="valid attributes"):
        LabelSchema.from_attrs(["A"]).index("B")
    # Schema errors reach the CLI as one-line user errors too.
    assert issubclass(SchemaError, UserError)


def test_decision_slices_by_kind_vs_slices_by_loss():
    ce = LabelSchema.from_attrs(ATTRS, [HAIR])
    bce = LabelSchema.from_attrs(ATTRS, [HAIR], exclusive_loss="bce")
    by_kind = [("exclusive", 0, 3), ("binary", 3, 4), ("binary", 4, 5)]
    assert ce.decision_slices() == ce.slices() == by_kind
    assert bce.decision_slices() == by_kind
    assert bce.slices() == [("binary", 0, 3), ("binary", 3, 4), ("binary", 4, 5)]
    # Judging a translation decides the hair group as its argmax (one member) ...
    logits = t(2.0, 1.0, -1.0, 0.5, -0.5).unsqueeze(0)
    assert logits_to_labels(logits, bce.decision_slices()).tolist() == [[1, 0, 0, 1, 0]]
    # ... while translate reads an input's labels from D as D learned them: each "bce" member its own logit > 0.

    class FakeD(torch.nn.Module):
        def forward(self, x):
            return None, logits.expand(x.shape[0], -1)

    space = LabelSpace(["celeba"], [bce])
    assert predict_labels(FakeD(), torch.zeros(1, 3, 8, 8), space, 0, 8).tolist() == [[1, 1, 0, 1, 0]]
    ce_space = LabelSpace(["celeba"], [ce])
    assert predict_labels(FakeD(), torch.zeros(1, 3, 8, 8), ce_space, 0, 8).tolist() == [[1, 0, 0, 1, 0]]


# -- decisions and accuracy ----------------------------------------------------------------------------------
def test_attribute_hits_and_group_counts():
    groups = [("binary", 0, 2), ("exclusive", 2, 5)]
    reference = torch.tensor([[1, 0, 1, 0, 0], [0, 0, 0, 1, 0], [1, 1, 0, 0, 1], [0, 1, 0, 0, 0]],
                             dtype=torch.float32)
    decided = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 0, 0], [1, 1, 0, 0, 1], [1, 1, 0, 1, 0]],
                           dtype=torch.float32)
    rows = {j: (hits[counted].tolist()) for j, hits, counted in attribute_hits(decided, reference, groups)}
    # Binary columns: every image; an exclusive member: the group's decision on the images of that class
    # (row 3 has no class and counts for no member).
    assert rows == {0: [True, True, True, False], 1: [False, True, True, True], 2: [True], 3: [False], 4: [True]}
    counter = AccuracyCounter()
    counter.add_groups(decided, reference, groups)
    assert (counter.correct, counter.total) == ({0: 6, 1: 2}, {0: 8, 1: 3})
    assert counter.accuracy() == 8 / 11 and counter.accuracy(1) == 2 / 3
    assert counter.result()["overall"] == {"accuracy": 8 / 11, "n": 11}


# -- parse_target ------------------------------------------------------------------------------------------
def test_parse_target_exclusive_clears_others(celeba):
    base = t(1, 0, 0, 0, 1)
    assert torch.equal(parse_target(celeba, "Blond_Hair=1,Male=1", base), t(0, 1, 0, 1, 1))
    assert torch.equal(parse_target(celeba, " Young = 0 ", base), t(1, 0, 0, 0, 0))
    # A redundant 0 on another member is fine when a member is set to 1 in the same spec.
    assert torch.equal(parse_target(celeba, "Black_Hair=0,Brown_Hair=1", base), t(0, 0, 1, 0, 1))
    # Untouched groups keep base values, even an all-zero exclusive block from the data.
    base0 = t(0, 0, 0, 1, 1)
    assert torch.equal(parse_target(celeba, "Male=0", base0), t(0, 0, 0, 0, 1))
    # Base is not modified; batched bases work.
    assert torch.equal(base, t(1, 0, 0, 0, 1))
    out = parse_target(celeba, "Blond_Hair=1", torch.stack([base, base0]))
    assert out[:, :3].tolist() == [[0, 1, 0], [0, 1, 0]]


@pytest.mark.parametrize(
    "spec, match",
    [
        ("Red_Hair=1", "unknown attribute 'Red_Hair'.*valid attributes: Black_Hair, Blond_Hair"),
        ("Male", "not of the form"),
        ("Male=1=2", "not of the form"),
        ("Male=2", "must be 0 or 1"),
        ("Male=yes", "must be 0 or 1"),
        ("Male=1,Male=0", "more than once"),
        ("Blond_Hair=1,Black_Hair=1", "exclusive"),
        ("Blond_Hair=0", "needs another member set to 1"),
        ("", "empty"),
        ("Male=1,", "not of the form"),
    ],
)
def test_parse_target_errors(celeba, spec, match):
    with pytest.raises(UserError, match=match):
        parse_target(celeba, spec, t(1, 0, 0, 0, 1))


def test_parse_target_vector(celeba):
    assert torch.equal(parse_target_vector(celeba, "0, 1,0,1,0.5"), t(0, 1, 0, 1, 0.5))
    assert parse_target_vector(3, "1,0,1").shape == (3,)
    with pytest.raises(UserError, match=r"has 4 values; expected 5 .*Black_Hair"):
        parse_target_vector(celeba, "0,1,0,1")
    with pytest.raises(UserError, match="expected 2 comma-separated"):
        parse_target_vector(2, "1,0,1")
    with pytest.raises(UserError, match="value 2 .* not a number"):
        parse_target_vector(2, "1,x")
    with pytest.raises(UserError, match="not finite"):
        parse_target_vector(2, "1,nan")
    with pytest.raises(UserError, match="empty"):
        parse_target_vector(2, " ")
    multi = MultiSchema([celeba, LabelSchema.from_attrs(["a", "b"], [["a", "b"]])], ["celeba", "rafd"])
    with pytest.raises(UserError, match="expected 9 "):
        parse_target_vector(multi, "1,0")


# -- generated targets -------------------------------------------------------------------------------------
def test_single_changes_official_grid(celeba):
    label = t(0, 0, 1, 1, 0)  # brown hair, male, not young
    cols = single_changes(celeba, label)
    assert [title for title, _ in cols] == ATTRS
    got = {title: v.tolist() for title, v in cols}
    assert got["Black_Hair"] == [1, 0, 0, 1, 0]
    assert got["Blond_Hair"] == [0, 1, 0, 1, 0]
    assert got["Brown_Hair"] == [0, 0, 1, 1, 0]
    assert got["Male"] == [0, 0, 1, 0, 0]
    assert got["Young"] == [0, 0, 1, 1, 1]
    # Batched, and from an all-zero hair block: each hair column sets exactly one colour.
    batch = torch.stack([label, t(0, 0, 0, 0, 1)])
    cols = single_changes(celeba, batch)
    assert len(cols) == 5 and all(v.shape == (2, 5) for _, v in cols)
    for _, v in cols[:3]:
        assert (v[:, :3].sum(1) == 1).all()
    with pytest.raises(ValueError, match="last dimension 5"):
        single_changes(celeba, t(0, 1))


def test_random_targets_valid_and_seeded(celeba):
    g = torch.Generator().manual_seed(0)
    y = random_targets(celeba, 4000, g)
    assert y.shape == (4000, 5)
    assert ((y == 0) | (y == 1)).all()
    assert (y[:, :3].sum(1) == 1).all()
    assert valid_targets(celeba, y).all()
    # Roughly uniform over the 3 hair colours and the binary values.
    assert torch.allclose(y[:, :3].mean(0), torch.full((3,), 1 / 3), atol=0.04)
    assert torch.allclose(y[:, 3:].mean(0), torch.full((2,), 0.5), atol=0.04)
    y1 = random_targets(celeba, 8, torch.Generator().manual_seed(5))
    y2 = random_targets(celeba, 8, torch.Generator().manual_seed(5))
    assert torch.equal(y1, y2)


def test_the_validity_check_refuses_invalid_targets(celeba):
    # The check the target tests rely on must itself fail on invalid vectors.
    assert valid_targets(celeba, t(0, 1, 0, 1, 0))
    assert not valid_targets(celeba, t(1, 1, 0, 0, 1))  # two members of an exclusive group
    assert not valid_targets(celeba, t(0, 0, 0, 0, 1))  # no member
    assert not valid_targets(celeba, t(1, 0, 0, 0.5, 1))  # a binary value that is neither 0 nor 1
    assert not valid_targets(celeba, t(0, 1, 0, 2, 0))
    assert valid_targets(celeba, torch.stack([t(0, 0, 1, 0, 0), t(1, 1, 0, 0, 0)])).tolist() == [True, False]
    # The official test grid of valid labels is valid (from data labels it keeps the untouched groups as they
    # are, so only the changed exclusive group is guaranteed to be one-hot).
    labels = torch.stack([t(0, 0, 1, 1, 0), t(1, 0, 0, 0, 1)])
    for name, target in single_changes(celeba, labels):
        assert valid_targets(celeba, target).all(), name


def test_single_group_targets_change_exactly_one_group(celeba):
    # Valid data labels (one hair colour each) and rows with no hair colour set (CelebA has such rows).
    rows = [t(1, 0, 0, 0, 0), t(0, 1, 0, 1, 1), t(0, 0, 1, 1, 0), t(0, 0, 0, 0, 1)]
    labels = torch.stack(rows * 1000)
    out = single_group_targets(celeba, labels, torch.Generator().manual_seed(0))
    assert out.shape == labels.shape
    hair_changed = (out[:, :3] != labels[:, :3]).any(1)
    male_changed = out[:, 3] != labels[:, 3]
    young_changed = out[:, 4] != labels[:, 4]
    assert (hair_changed.int() + male_changed.int() + young_changed.int() == 1).all()
    # From valid labels every target is valid (an untouched group keeps its data labels, as in the official
    # test grid); the changed group is drawn uniformly.
    has_hair = labels[:, :3].sum(1) == 1
    assert valid_targets(celeba, out[has_hair]).all()
    assert (out[hair_changed, :3].sum(1) == 1).all()
    for changed in (hair_changed, male_changed, young_changed):
        assert abs(changed.float().mean().item() - 1 / 3) < 0.03
    # A set hair colour goes to one of the two others, each about half the time; none set goes to any.
    black = hair_changed & (labels[:, 0] == 1)
    assert (out[black, 0] == 0).all()
    assert abs(out[black, 1].mean().item() - 0.5) < 0.07
    unset = hair_changed & (labels[:, :3].sum(1) == 0)
    assert torch.allclose(out[unset, :3].mean(0), torch.full((3,), 1 / 3), atol=0.08)
    # Seeded, and the inputs are left as they were.
    assert torch.equal(out, single_group_targets(celeba, labels, torch.Generator().manual_seed(0)))
    assert torch.equal(labels, torch.stack(rows * 1000))
    with pytest.raises(ValueError, match="labels"):
        single_group_targets(celeba, labels[:, :4])


def test_shuffle_targets_is_permutation():
    labels = torch.arange(24, dtype=torch.float32).reshape(8, 3)
    out = shuffle_targets(labels, torch.Generator().manual_seed(1))
    assert out.shape == labels.shape
    assert sorted(map(tuple, out.tolist())) == sorted(map(tuple, labels.tolist()))
    assert not torch.equal(out, labels)
    again = shuffle_targets(labels, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    # Without a generator the global RNG is used, like the official torch.randperm.
    torch.manual_seed(3)
    a = shuffle_targets(labels)
    torch.manual_seed(3)
    assert torch.equal(a, shuffle_targets(labels))


def test_apply_strength():
    orig, target = t(0, 1, 0), t(1, 0, 0)
    assert torch.equal(apply_strength(orig, target, 0.0), orig)
    assert torch.equal(apply_strength(orig, target, 1.0), target)
    assert torch.allclose(apply_strength(orig, target, 0.5), t(0.5, 0.5, 0))
    assert torch.allclose(apply_strength(orig, target, 2.0), t(2, -1, 0))


# -- mask vector -------------------------------------------------------------------------------------------
def test_multischema_two_datasets(celeba):
    rafd = LabelSchema.from_attrs([f"e{i}" for i in range(8)], {"expression": [f"e{i}" for i in range(8)]})
    m = MultiSchema([celeba, rafd], ["celeba", "rafd"])
    assert (m.n, m.label_dim, m.dim) == (2, 13, 15)  # official CelebA+RaFD: G input 15, D cls 13
    assert m.block_slice(0) == slice(0, 5) and m.block_slice(1) == slice(5, 13)
    y0 = t(1, 0, 0, 1, 1).expand(2, 5)
    e0 = m.embed(0, y0)
    assert e0.shape == (2, 15)
    assert e0[0].tolist() == [1, 0, 0, 1, 1] + [0] * 8 + [1, 0]
    y1 = torch.nn.functional.one_hot(torch.tensor([2, 7]), 8).float()
    e1 = m.embed(1, y1)
    assert e1[1].tolist() == [0] * 5 + [0] * 7 + [1] + [0, 1]
    # The mask: the last n columns, after D's label_dim, one-hot on the labelled dataset for every row.
    assert e0[:, m.label_dim:].tolist() == [[1, 0], [1, 0]] and e1[:, m.label_dim:].tolist() == [[0, 1], [0, 1]]
    assert m.embed(1, torch.zeros(3, 8))[:, 13:].tolist() == [[0, 1]] * 3
    assert torch.equal(m.extract(1, e1), y1)
    assert m.cls_slices(0) == [("exclusive", 0, 3), ("binary", 3, 4), ("binary", 4, 5)]
    assert m.cls_slices(1) == [("exclusive", 5, 13)]
    # All cls slices stay inside D's label_dim logits, and the loss target is the embed without the mask.
    assert max(b for i in range(2) for _, _, b in m.cls_slices(i)) == m.label_dim
    assert torch.equal(e1[:, : m.label_dim][:, 5:13], y1)
    with pytest.raises(ValueError, match="last dimension 8"):
        m.embed(1, y0)
    with pytest.raises(IndexError):
        m.block_slice(2)
    assert MultiSchema.from_dict(m.to_dict()) == m


def test_label_space_dataset_index(celeba):
    rafd = LabelSchema.from_attrs(["a", "b"], [["a", "b"]])
    space = LabelSpace(["celeba", "rafd"], [celeba, rafd])
    assert (space.dataset_index("celeba"), space.dataset_index("rafd")) == (0, 1)
    with pytest.raises(UserError, match=r"unknown dataset 'x'; this model's datasets: celeba, rafd$"):
        space.dataset_index("x")
    single = LabelSpace(["shapes"], [celeba])
    assert single.dataset_index("shapes") == 0
    with pytest.raises(UserError, match="shapes"):
        single.dataset_index("celeba")


def test_multischema_three_datasets():
    a = LabelSchema.from_attrs(["x", "y"])
    b = LabelSchema.from_attrs(["p", "q", "r"], [["p", "q", "r"]])
    c = LabelSchema.from_attrs(["z"])
    m = MultiSchema([a, b, c], ["a", "b", "c"])
    assert (m.label_dim, m.dim) == (6, 9)
    assert [m.block_slice(i) for i in range(3)] == [slice(0, 2), slice(2, 5), slice(5, 6)]
    assert m.cls_slices(1) == [("exclusive", 2, 5)]
    assert m.cls_slices(2) == [("binary", 5, 6)]
    e = m.embed(2, t(1).reshape(1, 1))
    assert e.tolist() == [[0, 0, 0, 0, 0, 1, 0, 0, 1]]
    e = m.embed(1, t(0, 0, 1))  # unbatched works too
    assert e.tolist() == [0, 0, 0, 0, 1, 0, 0, 1, 0]
    assert (m.embed(0, torch.ones(4, 2))[:, m.label_dim:] == t(1, 0, 0)).all()
    assert MultiSchema.from_dict(m.to_dict()) == m


def test_multischema_validation():
    a = LabelSchema.from_attrs(["x"])
    with pytest.raises(ValueError, match="at least 2"):
        MultiSchema([a], ["a"])
    with pytest.raises(ValueError, match="duplicate dataset"):
        MultiSchema([a, a], ["a", "a"])
    with pytest.raises(ValueError, match="names"):
        MultiSchema([a, a], ["a"])
    with pytest.raises(ValueError, match="datasets"):
        MultiSchema.from_dict({})
