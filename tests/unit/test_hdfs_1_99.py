import argparse

import pytest

from pipeline.evaluation.hdfs_1_99 import add_arguments, paper_protocol, train_config_from_args


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser, "hdfs-1-99")
    return parser.parse_args(list(argv))


def test_default_protocol_keeps_our_training():
    args = _args("--model", "deeplog")
    config = train_config_from_args(args)
    assert args.protocol == "ours"
    assert (config.end_of_session, config.dedupe, config.pair_weight, config.full_windows) == (
        True,
        True,
        "one",
        False,
    )
    assert config.top_k_candidates == (9,)


@pytest.mark.parametrize("extra", [(), ("--no-dedupe",)])
def test_paper_protocol_drops_the_marker_and_weights_every_window(extra):
    args = _args("--model", "deeplog", "--protocol", "paper", *extra)
    config = paper_protocol(train_config_from_args(args))
    assert (config.end_of_session, config.full_windows, config.pair_weight) == (False, True, "count")
    assert config.dedupe is not bool(extra) and config.top_k_candidates == (9,)  # g = 9
