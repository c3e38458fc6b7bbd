"""The columns of every table the pipeline writes, defined once.

Each tuple is what the table's readers need (a stage reading it passes the tuple to
``io.read_parquet``, which names the file and the missing column). ``pipeline.ARTIFACTS`` maps each
path pattern to its tuple, and ``varreason doctor`` checks a run's files against it. A stage may
write more columns than these (diagnostics, e.g. ``sample_logps``); the Parquet schemas in
docs/pipeline.md list them all.
"""

PREPARED = ("question_id", "question", "trace", "answer", "gold")
PREPARED_TRAIN = PREPARED
PREPARED_TEST = ("question_id", "question", "answer", "gold")  # a test split needs no reference trace
POSTERIOR_TRACES = (
    "question_id",
    "sample_index",
    "question",
    "answer",
    "gold",
    "prompt",
    "trace_token_ids",
    "finish_reason",
    "sample_logps",
)
SCORED_TRACES = ("question_id", "sample_index", "prior_logps", "posterior_logps", "answer_logps", "finish_reason")
ROLLOUTS = ("question_id", "sample_index", "rollout_verdicts", "acc")
INITIAL_SAMPLES = ("question_id", "question", "prompt", "completion", "completion_token_ids", "trace", "correct")
WEIGHTED_TRACES = ("question_id", "question", "trace", "trace_token_ids", "answer_token_ids", "log_weight", "weight")
# a weights table as a corpus to inspect (varreason traces) or select from
CORPUS = ("question_id", "sample_index", "question", "answer", "trace", "finish_reason", "log_weight", "weight")
FINAL_SET = ("question_id", "source", "prompt", "completion_token_ids", "weight")
EVAL_SAMPLES = ("question_id", "decoding", "correct")
