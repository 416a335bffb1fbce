"""gapcourse.models: the seed's exact structure, output shapes at any size, parameter counts, clear input errors."""

from __future__ import annotations

import pytest

from torch import nn
import torch

from gapcourse.models import HEADS, build_net, count_parameters, format_trace, shape_trace

GAP_HEADS = ["gap_mlp", "gap_linear", "nin", "gmp_linear", "concat_linear"]  # global pooling of any kind
FLATTEN_HEADS = ["flatten_fc", "flatten_fc_dropout"]


def conv_params(c_in, c_out, k=3):
    return c_in * c_out * k * k + c_out


def linear_params(n_in, n_out):
    return n_in * n_out + n_out


def test_body_is_the_seed_network_layer_for_layer():
    body = build_net().body
    expected = [("conv", 3, 32), "relu", ("conv", 32, 64), "relu", "pool", ("bn", 64),
                ("conv", 64, 128), "relu", ("conv", 128, 128), "relu", "pool", ("bn", 128),
                ("conv", 128, 256), "relu", ("conv", 256, 256), "relu", "pool", ("bn", 256)]
    assert len(body) == len(expected)
    for layer, want in zip(body, expected):
        if want == "relu":
            assert isinstance(layer, nn.ReLU)
        elif want == "pool":
            assert isinstance(layer, nn.MaxPool2d) and layer.kernel_size == 2 and layer.stride == 2
        elif want[0] == "bn":
            assert isinstance(layer, nn.BatchNorm2d) and layer.num_features == want[1]
        else:
            assert isinstance(layer, nn.Conv2d)
            assert (layer.in_channels, layer.out_channels) == want[1:]
            assert layer.kernel_size == (3, 3) and layer.padding == (1, 1)


def test_seed_head_is_gap_then_256_128_56_10():
    head = build_net("gap_mlp").head
    assert isinstance(head[0], nn.AdaptiveAvgPool2d) and head[0].output_size == (1, 1)
    assert isinstance(head[1], nn.Flatten)
    linears = [(m.in_features, m.out_features) for m in head if isinstance(m, nn.Linear)]
    assert linears == [(256, 128), (128, 56), (56, 10)]
    assert sum(isinstance(m, nn.ReLU) for m in head) == 2


def test_parameter_counts_follow_from_the_layer_sizes():
    body = (conv_params(3, 32) + conv_params(32, 64) + conv_params(64, 128) + conv_params(128, 128)
            + conv_params(128, 256) + conv_params(256, 256) + 2 * (64 + 128 + 256))
    mlp = linear_params(256, 128) + linear_params(128, 56) + linear_params(56, 10)
    flat = linear_params(256 * 4 * 4, 128) + linear_params(128, 56) + linear_params(56, 10)
    assert count_parameters(build_net("gap_mlp").body) == body
    assert count_parameters(build_net("gap_mlp")) == body + mlp
    assert count_parameters(build_net("gap_linear").head) == linear_params(256, 10)
    assert count_parameters(build_net("nin").head) == 2 * conv_params(256, 256, k=1) + conv_params(256, 10, k=1)
    assert count_parameters(build_net("gmp_linear").head) == linear_params(256, 10)
    assert count_parameters(build_net("flatten_fc").head) == flat
    assert count_parameters(build_net("flatten_fc_dropout").head) == flat
    assert count_parameters(build_net("flatten_fc", input_size=64).head) == flat - linear_params(4096, 128) + \
        linear_params(256 * 8 * 8, 128)


@pytest.mark.parametrize("head", GAP_HEADS)
@pytest.mark.parametrize("size", [32, 64, 40])
@pytest.mark.parametrize("width", [1.0, 0.5])
def test_gap_heads_accept_any_input_size(head, size, width):
    net = build_net(head, width=width).eval()
    assert net(torch.randn(2, 3, size, size)).shape == (2, 10)
    assert net.features(torch.randn(2, 3, size, size)).shape == (2, round(256 * width), size // 8, size // 8)


def test_width_multiplier_scales_every_conv_and_keeps_the_structure():
    half = build_net(width=0.5)
    convs = [m.out_channels for m in half.body if isinstance(m, nn.Conv2d)]
    assert convs == [16, 32, 64, 64, 128, 128]
    assert [type(m) for m in half.body] == [type(m) for m in build_net().body]


@pytest.mark.parametrize("head", FLATTEN_HEADS)
def test_flatten_head_fed_another_size_names_expected_and_got(head):
    net = build_net(head).eval()
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"built for 256×4×4 feature maps \(32×32 input.*got 256×8×8"):
        net(torch.randn(2, 3, 64, 64))


def test_wrong_rank_and_channels_are_explained():
    net = build_net()
    with pytest.raises(ValueError, match=r"rank 4.*got rank 3.*unsqueeze"):
        net(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match=r"3 colour channels.*got 32.*permute"):
        net(torch.randn(2, 32, 32, 3))
    with pytest.raises(ValueError, match="at least 8×8"):
        net(torch.randn(1, 3, 4, 4))


def test_bad_builder_arguments():
    with pytest.raises(ValueError, match="Unknown head 'gap'"):
        build_net("gap")
    with pytest.raises(ValueError, match="width must be positive"):
        build_net(width=0)
    with pytest.raises(ValueError, match="multiple of 8"):
        build_net("flatten_fc", input_size=30)


def test_gap_layer_is_the_spatial_mean():
    feats = torch.randn(4, 256, 4, 4)
    pooled = build_net("gap_linear").head[0](feats)
    assert torch.allclose(pooled.flatten(1), feats.mean((2, 3)))


def test_nin_head_is_an_mlpconv_stack_then_gap():
    head = build_net("nin").head
    assert not any(isinstance(m, nn.Linear) for m in head)
    convs = [m for m in head if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(1, 1)] * 3 and convs[-1].out_channels == 10
    assert sum(isinstance(m, nn.ReLU) for m in head) == 2 and isinstance(head[-2], nn.AdaptiveAvgPool2d)
    maps = torch.randn(2, 256, 4, 4)
    assert torch.allclose(head(maps), head[:5](maps).mean((2, 3)), atol=1e-6)  # scores = class-map averages
    assert set(HEADS) == {"gap_mlp", "gap_linear", "nin", "gmp_linear", "concat_linear", "flatten_fc",
                          "flatten_fc_dropout"}


def test_gmp_head_takes_each_maps_maximum():
    net = build_net("gmp_linear").eval()
    maps = torch.randn(2, 256, 5, 3)
    assert torch.allclose(net.head(maps), net.head[2](maps.amax((2, 3))), atol=1e-6)


def test_concat_head_puts_each_maps_average_then_its_maximum_into_one_linear():
    net = build_net("concat_linear").eval()
    maps = torch.randn(2, 256, 5, 3)
    pooled = net.head[0](maps)
    assert pooled.shape == (2, 512, 1, 1)
    assert torch.allclose(pooled.flatten(1), torch.cat([maps.mean((2, 3)), maps.amax((2, 3))], 1), atol=1e-6)
    linear = net.head[2]
    assert linear.in_features == 512 and count_parameters(net.head) == linear_params(512, 10)
    # the score splits into an average part and a max part, each a linear function of its own half
    w_avg, w_max = linear.weight[:, :256], linear.weight[:, 256:]
    scores = maps.mean((2, 3)) @ w_avg.T + maps.amax((2, 3)) @ w_max.T + linear.bias
    assert torch.allclose(net.head(maps), scores, atol=1e-5)


def test_shape_trace_records_every_layer():
    rows = shape_trace(build_net(), torch.randn(2, 3, 32, 32))
    assert rows[0].output_shape == (2, 32, 32, 32)
    assert rows[-1].output_shape == (2, 10)
    assert sum(r.parameters for r in rows) == count_parameters(build_net())
    assert "1,167,666" in format_trace(rows)


def test_uint8_images_into_the_network_say_call_normalize():
    with pytest.raises(TypeError, match="normalize"):
        build_net(width=0.25)(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
