"""A small tokenizer built locally, for the tiny and random-weight models (no download, no umT5 vocabulary).

Byte-level BPE, so any text (English, Chinese, emoji) tokenizes without unknown tokens. It is trained
deterministically on the corpus below and wrapped as a transformers fast tokenizer with umT5's special tokens
at umT5's ids (<pad> 0, </s> 1, <unk> 2) and an appended </s>, which is all WanPipeline's prompt encoding needs.
"""

from __future__ import annotations

_CORPUS = """
A red fox walks through fresh snow at dawn, its breath rising in small clouds.
A cat and a dog bake a cake together in a cozy kitchen while sunlight streams through the window.
Two astronauts float inside a space station, slowly turning as the Earth passes below.
Waves crash against black rocks; the camera pans left along the coast under a stormy sky.
A paper boat drifts down a rain-filled street in a quiet city at night, neon lights reflecting.
Close-up of a hummingbird drinking from a flower, wings blurred, shallow depth of field.
Aerial view of a mountain road winding through autumn forests, cinematic, golden hour.
An old man plays the violin on a bridge while people walk past; slow motion, warm tones.
Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, overall gray,
worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly drawn hands,
poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy background,
three legs, many people in the background, walking backwards.
一只红狐狸在清晨的雪地里行走，呼出的气在空中形成小小的白雾。
一只猫和一只狗在温馨的厨房里一起烤蛋糕，阳光从窗户照进来。
两名宇航员在空间站里漂浮，地球在下方缓缓转动。
海浪拍打着黑色的礁石，镜头沿着海岸向左平移，天空乌云密布。
夜晚安静的城市里，一只纸船顺着积水的街道漂流，霓虹灯的倒影闪烁。
色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，
JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，
手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走。
Un renard roux marche dans la neige. Ein roter Fuchs läuft durch den Schnee. Un zorro rojo camina por la nieve.
赤いキツネが雪の中を歩いている。 빨간 여우가 눈 속을 걷고 있다. Красная лиса идёт по снегу.
0 1 2 3 4 5 6 7 8 9 10 24 30 60 120 720p 1080p 4K 16:9 9:16
"""

VOCAB_SIZE = 2048
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")
MODEL_MAX_LENGTH = 512


def build_tokenizer():
    """Returns a transformers PreTrainedTokenizerFast; the same bytes on every run (training is deterministic)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [line for line in _CORPUS.splitlines() if line.strip()]
    tok.train_from_iterator(lines, trainer=trainer)
    eos_id = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=MODEL_MAX_LENGTH,
        padding_side="right",
    )
