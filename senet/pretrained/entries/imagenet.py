"""The public ImageNet-1k checkpoints of the table, one entry per file: where it is, how it is named, how
it was trained to see its input, and what its publisher measured.

Every figure here comes from the publisher's own source (cited in ``source`` and in docs/pretrained.md);
nothing is estimated.
"""

from __future__ import annotations

from ..schema import INCEPTION_MEAN, INCEPTION_STD, Preprocessing, PretrainedWeights

# ---------------------------------------------------------------------------------------------------
# Sources (read for this table; docs/pretrained.md lists them with what each one gave).

_CADENE = "https://github.com/Cadene/pretrained-models.pytorch/blob/master"
CADENE_SENET = f"{_CADENE}/pretrainedmodels/models/senet.py"
CADENE_IRV2 = f"{_CADENE}/pretrainedmodels/models/inceptionresnetv2.py"
CADENE_README = f"{_CADENE}/README.md"
_TIMM = "https://github.com/huggingface/pytorch-image-models/blob/0173a139a2c66db3a41ebfe1d8ac4fb02483642e"
TIMM_SENET = f"{_TIMM}/timm/models/senet.py"
TIMM_RESNET = f"{_TIMM}/timm/models/resnet.py"
TIMM_RESULTS = f"{_TIMM}/results/results-imagenet.csv"
TIMM_IRV2 = "https://huggingface.co/timm/inception_resnet_v2.tf_in1k"
_TV = "https://github.com/pytorch/vision/blob/main/torchvision/models"

# The options under which our ResNets compute what the publishers' do (see senet.convert.resnet).
_CAFFE_1X1 = (("stem_pool", "ceil"),)  # SEResNetBottleneck: stride on conv1 (our default)
_CAFFE_3X3 = (("stem_pool", "ceil"), ("stride_in_1x1", False))  # SEResNeXtBottleneck, SEBottleneck
_CAFFE_BASIC = (("stem_pool", "ceil"), ("relu_before_se", True))  # timm's SEResNetBlock: ReLU after bn2, then SE
_V15 = (("stride_in_1x1", False),)  # torchvision / timm ResNet: stride on the 3x3 convolution

_TV_V1 = Preprocessing()  # ImageClassification(crop_size=224): resize 256, bilinear
_TV_V2 = Preprocessing(crop_pct=224 / 232)  # ImageClassification(crop_size=224, resize_size=232)


def _pre(size: int, crop_pct: float, interpolation: str) -> Preprocessing:
    """ImageNet mean/std, RGB, at ``size`` px."""
    return Preprocessing(input_size=(3, size, size), crop_pct=crop_pct, interpolation=interpolation)


def _caffe(
    model: str, file: str, prefix: str, top: tuple[float, float], caffe: tuple[float, float], options: tuple
) -> PretrainedWeights:
    """One of the SE authors' Caffe models as converted and served by pretrainedmodels (Cadene)."""
    return PretrainedWeights(
        model=model,
        tag="caffe",
        url=f"http://data.lip6.fr/cadene/pretrainedmodels/{file}",
        naming="legacy",
        options=options,
        preprocessing=_pre(224, 0.875, "bilinear"),  # TransformImage(scale=0.875), torchvision Resize
        top1=top[0],
        top5=top[1],
        sha256_prefix=prefix,
        source=CADENE_SENET,
        default=True,
        notes=f"The SE authors' Caffe model (hujie-frank/SENet) converted by pretrainedmodels; top-1/top-5: "
        f"pretrainedmodels' own evaluation ('Our porting', {CADENE_README}); the SE authors report "
        f"{caffe[0]}/{caffe[1]} for the Caffe original. Head AvgPool2d(7): the global average at 224 px.",
    )


def _timm_legacy(
    model: str,
    url: str,
    prefix: str,
    top: tuple[float, float],
    interpolation: str,
    options: tuple,
    notes: str,
    default: bool = False,
) -> PretrainedWeights:
    """A ``legacy_se*`` checkpoint served by timm (``timm/models/senet.py``), evaluated by timm at 224 px."""
    return PretrainedWeights(
        model=model,
        tag="timm_legacy",
        url=url,
        naming="legacy",
        options=options,
        preprocessing=_pre(224, 0.875, interpolation),
        top1=top[0],
        top5=top[1],
        sha256_prefix=prefix,
        source=TIMM_SENET,
        default=default,
        notes=f"{notes} top-1/top-5: timm's results-imagenet.csv at 224 px ({TIMM_RESULTS}).",
    )


def _timm(
    model: str,
    tag: str,
    url: str,
    prefix: str,
    top: tuple[float, float],
    preprocessing: Preprocessing,
    notes: str,
    options: tuple = _V15,
) -> PretrainedWeights:
    """A checkpoint of timm's ``resnet.py`` (modern naming); the figures are timm's results CSV row."""
    return PretrainedWeights(
        model=model,
        tag=tag,
        url=url,
        naming="modern",
        options=options,
        preprocessing=preprocessing,
        top1=top[0],
        top5=top[1],
        sha256_prefix=prefix,
        source=TIMM_RESNET,
        notes=f"{notes} top-1/top-5: timm's results-imagenet.csv ({TIMM_RESULTS}), measured with this "
        "preprocessing.",
    )


def _tv(
    model: str,
    tag: str,
    file: str,
    prefix: str,
    top: tuple[float, float],
    *,
    module: str,
    enum: str,
    file_size_mb: float,
    recipe: str,
    naming: str = "modern",
    options: tuple = _V15,
    preprocessing: Preprocessing = _TV_V1,
    default: bool = False,
) -> PretrainedWeights:
    """A torchvision checkpoint: URL, transforms, acc@1/acc@5 and file size from its ``Weights`` enum."""
    return PretrainedWeights(
        model=model,
        tag=tag,
        url=f"https://download.pytorch.org/models/{file}",
        naming=naming,
        options=options,
        preprocessing=preprocessing,
        top1=top[0],
        top5=top[1],
        sha256_prefix=prefix,
        source=f"{_TV}/{module}.py",
        default=default,
        notes=f"torchvision {enum} ({recipe}); its _file_size: {file_size_mb} MB. top-1/top-5: torchvision's "
        "_metrics acc@1/acc@5.",
    )


_TIMM_RELEASES = "https://github.com/rwightman/pytorch-image-models/releases/download"
_HF_RELEASES = "https://github.com/huggingface/pytorch-image-models/releases/download"
_GLUON = "https://github.com/rwightman/pytorch-pretrained-gluonresnet/releases/download/v0.1"
_GLUON_NOTE = "MXNet Gluon model zoo weights ported by timm (stride on the 3x3, stem max pool padded)."
_TV1 = "IMAGENET1K_V1: 'reproduce closely the results of the paper using a simple training recipe'"
_TV2 = "IMAGENET1K_V2: TorchVision's new training recipe"

# Filled from the publishers' sources; see docs/pretrained.md for the citations.
IMAGENET: tuple[PretrainedWeights, ...] = (
    # --- SENet-154 -------------------------------------------------------------------------------
    _caffe("senet154", "senet154-c7b49a05.pth", "c7b49a05", (81.304, 95.498), (81.32, 95.53), _CAFFE_3X3),
    _timm_legacy(
        "senet154",
        f"{_TIMM_RELEASES}/v0.1-weights/legacy_senet154-e9eb9fe6.pth",
        "e9eb9fe6",
        (81.308, 95.492),
        "bilinear",
        _CAFFE_3X3,
        "timm legacy_senet154.in1k: the SE authors' Caffe model (Cadene's conversion) as served by timm.",
    ),
    _timm(
        "senet154",
        "timm_gluon_in1k",
        f"{_GLUON}/gluon_senet154-70a1a3c0.pth",
        "70a1a3c0",
        (81.226, 95.358),
        _pre(224, 0.875, "bicubic"),
        f"timm senet154.gluon_in1k. {_GLUON_NOTE}",
    ),
    # --- SE-ResNet-18/34 (trained in timm with the legacy SENet code) ------------------------------
    _timm_legacy(
        "se_resnet18",
        f"{_TIMM_RELEASES}/v0.1-weights/seresnet18-4bb0ce65.pth",
        "4bb0ce65",
        (71.766, 90.332),
        "bicubic",
        _CAFFE_BASIC,
        "timm legacy_seresnet18.in1k, from timm's own release (pretrainedmodels has no SE-ResNet-18/34); its "
        "SEResNetBlock has a ReLU between bn2 and SE.",
        default=True,
    ),
    _timm_legacy(
        "se_resnet34",
        f"{_TIMM_RELEASES}/v0.1-weights/seresnet34-a4004e63.pth",
        "a4004e63",
        (74.808, 92.126),
        "bilinear",
        _CAFFE_BASIC,
        "timm legacy_seresnet34.in1k, from timm's own release (pretrainedmodels has no SE-ResNet-18/34); its "
        "SEResNetBlock has a ReLU between bn2 and SE.",
        default=True,
    ),
    # --- SE-ResNet-50/101/152 ----------------------------------------------------------------------
    _caffe("se_resnet50", "se_resnet50-ce0d4300.pth", "ce0d4300", (77.636, 93.752), (77.63, 93.64), _CAFFE_1X1),
    _timm_legacy(
        "se_resnet50",
        f"{_TIMM_RELEASES}/v0.1-cadene/se_resnet50-ce0d4300.pth",
        "ce0d4300",
        (77.644, 93.758),
        "bilinear",
        _CAFFE_1X1,
        "timm legacy_seresnet50.in1k: timm's GitHub copy of Cadene's file (same name and hash prefix).",
    ),
    _timm(
        "se_resnet50",
        "timm_ra2_in1k",
        f"{_TIMM_RELEASES}/v0.1-weights/seresnet50_ra_224-8efdb4bb.pth",
        "8efdb4bb",
        (81.284, 95.652),
        _pre(288, 0.95, "bicubic"),
        "timm seresnet50.ra2_in1k (RandAugment recipe), trained at 224 px (cfg: crop_pct 0.875, bicubic); "
        "published top-1 at the test size 288 px, crop_pct 0.95; timm publishes no 224 px figure.",
    ),
    _timm(
        "se_resnet50",
        "timm_a1_in1k",
        f"{_HF_RELEASES}/v0.1-rsb-weights/seresnet50_a1_0-ffa00869.pth",
        "ffa00869",
        (81.102, 95.120),
        _pre(288, 1.0, "bicubic"),
        "timm seresnet50.a1_in1k (ResNet strikes back A1 recipe), trained at 224 px; published top-1 at the "
        "test size 288 px, crop_pct 1.0.",
    ),
    _timm(
        "se_resnet50",
        "timm_a2_in1k",
        f"{_HF_RELEASES}/v0.1-rsb-weights/seresnet50_a2_0-850de0d9.pth",
        "850de0d9",
        (81.106, 95.222),
        _pre(288, 1.0, "bicubic"),
        "timm seresnet50.a2_in1k (ResNet strikes back A2 recipe), trained at 224 px; published top-1 at the "
        "test size 288 px, crop_pct 1.0.",
    ),
    _timm(
        "se_resnet50",
        "timm_a3_in1k",
        f"{_HF_RELEASES}/v0.1-rsb-weights/seresnet50_a3_0-317ecd56.pth",
        "317ecd56",
        (77.028, 93.074),
        _pre(224, 0.95, "bicubic"),
        "timm seresnet50.a3_in1k (ResNet strikes back A3 recipe), trained at 160 px; published top-1 at the "
        "test size 224 px, crop_pct 0.95.",
    ),
    _caffe("se_resnet101", "se_resnet101-7e38fcc6.pth", "7e38fcc6", (78.396, 94.258), (78.25, 94.28), _CAFFE_1X1),
    _timm_legacy(
        "se_resnet101",
        f"{_TIMM_RELEASES}/v0.1-cadene/se_resnet101-7e38fcc6.pth",
        "7e38fcc6",
        (78.386, 94.262),
        "bilinear",
        _CAFFE_1X1,
        "timm legacy_seresnet101.in1k: timm's GitHub copy of Cadene's file (same name and hash prefix).",
    ),
    _caffe("se_resnet152", "se_resnet152-d17c99b7.pth", "d17c99b7", (78.658, 94.374), (78.66, 94.46), _CAFFE_1X1),
    _timm_legacy(
        "se_resnet152",
        f"{_TIMM_RELEASES}/v0.1-cadene/se_resnet152-d17c99b7.pth",
        "d17c99b7",
        (78.660, 94.370),
        "bilinear",
        _CAFFE_1X1,
        "timm legacy_seresnet152.in1k: timm's GitHub copy of Cadene's file (same name and hash prefix).",
    ),
    # --- SE-ResNeXt-50/101 32x4d -------------------------------------------------------------------
    _caffe(
        "se_resnext50_32x4d",
        "se_resnext50_32x4d-a260b3a4.pth",
        "a260b3a4",
        (79.076, 94.434),
        (79.03, 94.46),
        _CAFFE_3X3,
    ),
    _timm_legacy(
        "se_resnext50_32x4d",
        f"{_TIMM_RELEASES}/v0.1-weights/legacy_se_resnext50_32x4d-f3651bad.pth",
        "f3651bad",
        (79.076, 94.432),
        "bilinear",
        _CAFFE_3X3,
        "timm legacy_seresnext50_32x4d.in1k: the SE authors' Caffe model as served by timm.",
    ),
    _timm(
        "se_resnext50_32x4d",
        "timm_racm_in1k",
        f"{_TIMM_RELEASES}/v0.1-weights/seresnext50_32x4d_racm-a304a460.pth",
        "a304a460",
        (82.196, 96.148),
        _pre(288, 0.95, "bicubic"),
        "timm seresnext50_32x4d.racm_in1k (RandAugment + CutMix recipe), trained at 224 px (cfg: crop_pct "
        "0.875, bicubic); published top-1 at the test size 288 px, crop_pct 0.95.",
    ),
    _timm(
        "se_resnext50_32x4d",
        "timm_gluon_in1k",
        f"{_GLUON}/gluon_seresnext50_32x4d-90cf2d6e.pth",
        "90cf2d6e",
        (79.910, 94.824),
        _pre(224, 0.875, "bicubic"),
        f"timm seresnext50_32x4d.gluon_in1k. {_GLUON_NOTE}",
    ),
    _caffe(
        "se_resnext101_32x4d",
        "se_resnext101_32x4d-3b2fe3d8.pth",
        "3b2fe3d8",
        (80.236, 95.028),
        (80.19, 95.04),
        _CAFFE_3X3,
    ),
    _timm_legacy(
        "se_resnext101_32x4d",
        f"{_TIMM_RELEASES}/v0.1-weights/legacy_se_resnext101_32x4d-37725eac.pth",
        "37725eac",
        (80.230, 95.026),
        "bilinear",
        _CAFFE_3X3,
        "timm legacy_seresnext101_32x4d.in1k: the SE authors' Caffe model as served by timm.",
    ),
    _timm(
        "se_resnext101_32x4d",
        "timm_gluon_in1k",
        f"{_GLUON}/gluon_seresnext101_32x4d-cf52900d.pth",
        "cf52900d",
        (80.892, 95.296),
        _pre(224, 0.875, "bicubic"),
        f"timm seresnext101_32x4d.gluon_in1k. {_GLUON_NOTE}",
    ),
    # --- Plain ResNets (torchvision) ---------------------------------------------------------------
    _tv(
        "resnet18", "tv_in1k", "resnet18-f37072fd.pth", "f37072fd", (69.758, 89.078),
        module="resnet", enum="ResNet18_Weights.IMAGENET1K_V1", file_size_mb=44.661, recipe=_TV1,
        options=(), default=True,
    ),
    _tv(
        "resnet34", "tv_in1k", "resnet34-b627a593.pth", "b627a593", (73.314, 91.420),
        module="resnet", enum="ResNet34_Weights.IMAGENET1K_V1", file_size_mb=83.275, recipe=_TV1,
        options=(), default=True,
    ),
    _tv(
        "resnet50", "tv_in1k", "resnet50-0676ba61.pth", "0676ba61", (76.130, 92.862),
        module="resnet", enum="ResNet50_Weights.IMAGENET1K_V1", file_size_mb=97.781, recipe=_TV1, default=True,
    ),
    _tv(
        "resnet50", "tv2_in1k", "resnet50-11ad3fa6.pth", "11ad3fa6", (80.858, 95.434),
        module="resnet", enum="ResNet50_Weights.IMAGENET1K_V2", file_size_mb=97.79, recipe=_TV2,
        preprocessing=_TV_V2,
    ),
    _tv(
        "resnet101", "tv_in1k", "resnet101-63fe2227.pth", "63fe2227", (77.374, 93.546),
        module="resnet", enum="ResNet101_Weights.IMAGENET1K_V1", file_size_mb=170.511, recipe=_TV1, default=True,
    ),
    _tv(
        "resnet101", "tv2_in1k", "resnet101-cd907fc2.pth", "cd907fc2", (81.886, 95.780),
        module="resnet", enum="ResNet101_Weights.IMAGENET1K_V2", file_size_mb=170.53, recipe=_TV2,
        preprocessing=_TV_V2,
    ),
    _tv(
        "resnet152", "tv_in1k", "resnet152-394f9c45.pth", "394f9c45", (78.312, 94.046),
        module="resnet", enum="ResNet152_Weights.IMAGENET1K_V1", file_size_mb=230.434, recipe=_TV1, default=True,
    ),
    _tv(
        "resnet152", "tv2_in1k", "resnet152-f82ba261.pth", "f82ba261", (82.284, 96.002),
        module="resnet", enum="ResNet152_Weights.IMAGENET1K_V2", file_size_mb=230.474, recipe=_TV2,
        preprocessing=_TV_V2,
    ),
    _tv(
        "resnext50_32x4d", "tv_in1k", "resnext50_32x4d-7cdf4587.pth", "7cdf4587", (77.618, 93.698),
        module="resnet", enum="ResNeXt50_32X4D_Weights.IMAGENET1K_V1", file_size_mb=95.789, recipe=_TV1,
        default=True,
    ),
    _tv(
        "resnext50_32x4d", "tv2_in1k", "resnext50_32x4d-1a0047aa.pth", "1a0047aa", (81.198, 95.340),
        module="resnet", enum="ResNeXt50_32X4D_Weights.IMAGENET1K_V2", file_size_mb=95.833, recipe=_TV2,
        preprocessing=_TV_V2,
    ),
    PretrainedWeights(
        model="resnext101_32x4d",
        tag="timm_gluon_in1k",
        url=f"{_GLUON}/gluon_resnext101_32x4d-b253c8c4.pth",
        naming="modern",
        options=_V15,
        preprocessing=_pre(224, 0.875, "bicubic"),
        top1=80.340,
        top5=94.930,
        sha256_prefix="b253c8c4",
        source=TIMM_RESNET,
        default=True,
        notes=f"timm resnext101_32x4d.gluon_in1k (torchvision publishes no ResNeXt-101 32x4d). {_GLUON_NOTE} "
        f"top-1/top-5: timm's results-imagenet.csv ({TIMM_RESULTS}), measured with this preprocessing.",
    ),
    # --- torchvision's other plain networks --------------------------------------------------------
    _tv(
        "vgg16_bn", "tv_in1k", "vgg16_bn-6c64b313.pth", "6c64b313", (73.360, 91.516),
        module="vgg", enum="VGG16_BN_Weights.IMAGENET1K_V1", file_size_mb=527.866, recipe="its only weights",
        naming="torchvision", options=(), default=True,
    ),
    _tv(
        "densenet121", "tv_in1k", "densenet121-a639ec97.pth", "a639ec97", (74.434, 91.972),
        module="densenet", enum="DenseNet121_Weights.IMAGENET1K_V1", file_size_mb=30.845,
        recipe="its only weights; old key spelling 'norm.1', read by the naming's alias", naming="torchvision",
        options=(), default=True,
    ),
    _tv(
        "mobilenet_v3_large", "tv_in1k", "mobilenet_v3_large-8738ca79.pth", "8738ca79", (74.042, 91.340),
        module="mobilenetv3", enum="MobileNet_V3_Large_Weights.IMAGENET1K_V1", file_size_mb=21.114,
        recipe="IMAGENET1K_V1: 'trained from scratch by using a simple training recipe'; BatchNorm eps 1e-3 as "
        "ours", naming="torchvision", options=(), default=True,
    ),
    _tv(
        "mobilenet_v3_large", "tv2_in1k", "mobilenet_v3_large-5c1a4163.pth", "5c1a4163", (75.274, 92.566),
        module="mobilenetv3", enum="MobileNet_V3_Large_Weights.IMAGENET1K_V2", file_size_mb=21.107,
        recipe="IMAGENET1K_V2: a modified version of TorchVision's new training recipe; BatchNorm eps 1e-3 as "
        "ours", naming="torchvision", options=(), preprocessing=_TV_V2,
    ),
    _tv(
        "efficientnet_b0", "tv_in1k", "efficientnet_b0_rwightman-7f5810bc.pth", "7f5810bc", (77.692, 93.532),
        module="efficientnet", enum="EfficientNet_B0_Weights.IMAGENET1K_V1", file_size_mb=20.451,
        recipe="weights ported from timm; BatchNorm eps 1e-5 (nn.BatchNorm2d's default), hence bn_eps",
        naming="torchvision", options=(("bn_eps", 1e-5),), preprocessing=_pre(224, 0.875, "bicubic"),
        default=True,
    ),
    # --- Inception-ResNet-v2 (Google's TF-slim weights) --------------------------------------------
    PretrainedWeights(
        model="inception_resnet_v2",
        tag="timm_tf_in1k",
        url=f"{TIMM_IRV2}/resolve/89854797f99e77e1189626b74d7c07013a4308fa/pytorch_model.bin",
        naming="tf_slim",
        options=(("last_block_scale", 1.0),),
        preprocessing=Preprocessing(
            input_size=(3, 299, 299),
            crop_pct=0.8975,
            interpolation="bicubic",
            mean=INCEPTION_MEAN,
            std=INCEPTION_STD,
        ),
        top1=80.462,
        top5=95.308,
        sha256="d47b5edf9f355ef395162258bd2eb0edb2710bf3711774de54d5f4a1d1fcfbdf",
        source="https://github.com/huggingface/pytorch-image-models/blob/main/timm/models/inception_resnet_v2.py",
        default=True,
        notes="timm inception_resnet_v2.tf_in1k: the TF-slim checkpoint with the background class dropped (1000 "
        "classes), on the Hugging Face Hub at a pinned revision (sha256 from the Hub's LFS record, "
        f"{TIMM_IRV2}/blob/89854797f99e77e1189626b74d7c07013a4308fa/pytorch_model.bin); block8 is scaled "
        f"by 1.0, hence last_block_scale. top-1/top-5: timm's results-imagenet.csv ({TIMM_RESULTS}).",
    ),
    PretrainedWeights(
        model="inception_resnet_v2",
        tag="tf_slim",
        url="http://data.lip6.fr/cadene/pretrainedmodels/inceptionresnetv2-520b38e4.pth",
        naming="tf_slim",
        options=(("last_block_scale", 1.0),),
        preprocessing=Preprocessing(
            input_size=(3, 299, 299),
            crop_pct=0.875,
            interpolation="bilinear",
            mean=INCEPTION_MEAN,
            std=INCEPTION_STD,
        ),
        top1=80.170,
        top5=95.234,
        sha256_prefix="520b38e4",
        source=CADENE_IRV2,
        num_classes=1001,
        notes="pretrainedmodels' port of the TF-slim checkpoint: the file keeps TF-slim's 1001 classes (row 0 "
        "= background); pretrainedmodels' 'imagenet' setting drops row 0 of last_linear for 1000 classes. "
        f"top-1/top-5: pretrainedmodels' own evaluation of that 1000-class model ({CADENE_README}); "
        "TF-slim reports 80.4/95.3.",
    ),
)
