"""The claims report as markdown: ``render`` (claims/claims.md) and ``readme_claims`` (the table
README.md carries between its ``claims`` markers; tests/test_readme_claims.py holds them equal)."""

from __future__ import annotations

README_BEGIN = "<!-- claims:begin (generated from claims/claims.json by varreason.claims_page.readme_claims) -->"
README_END = "<!-- claims:end -->"


def _pct(x, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}"


def _gain(x) -> str:
    return "-" if x is None else f"{100 * x:+.1f}"


def _ci(c: dict | None, signed: bool = False) -> str:
    if not c or c.get("mean") is None:
        return "-"
    f = _gain if signed else _pct
    if c.get("lo") is None:
        return f(c["mean"])
    return f"{f(c['mean'])} [{f(c['lo'])}, {f(c['hi'])}]"


def _p(p) -> str:
    return "-" if p is None else f"{p:.3g}"


def _seed(d: dict, s):
    return d.get(str(s), d.get(s))


def comparison_table(rows: list[dict], subset: str, verdict: bool) -> list[str]:
    head = "| comparison | what | seeds (+) | mean gain [95% CI] | p t (Holm) | p sign-flip (Holm) |"
    out = [head + (" holds |" if verdict else ""), "|---|---|---|---|---|---|" + ("---|" if verdict else "")]
    for r in rows:
        a = r[subset]
        cells = (
            f"| {r['a']} - {r['b']} ({r['metric']}) | {r.get('what', '')} | {a['n']} ({a.get('seeds_positive', 0)}) "
            f"| {_ci(a, signed=True)} | {_p(a.get('p_t'))} ({_p(a.get('p_t_holm'))}) "
            f"| {_p(a.get('p_sign'))} ({_p(a.get('p_sign_holm'))}) |"
        )
        out.append(cells + ((" **yes** |" if a.get("holds") else " no |") if verdict else ""))
    return out


def render(doc: dict) -> str:
    prov, seeds = doc["provenance"], doc["seeds"]
    all_seeds = seeds["all"]
    modified = " (tracked files modified)" if prov.get("tracked_files_modified") else ""
    lines = [
        "# Claims across seeds",
        "",
        f"Commit `{(prov.get('commit') or '?')[:12]}`{modified},"
        f" {prov['date']}, {prov['cpu']} ({prov['cores']} cores), params sha256 `{prov['params_sha256'][:12]}`;"
        f" plan `{doc['plan']['path']}` registered {doc['plan']['registered']}. Accuracy in % of held-out questions"
        f" ({'/'.join(str(n) for n in sorted(set(doc['n_test_questions'].values())))} per seed); a gain is the mean"
        " over seeds of the per-seed paired difference, with a 95% t-interval; p-values two-sided, Holm-adjusted"
        " within each family; a primary comparison holds when both adjusted p-values are below"
        f" {doc['plan']['tests']['alpha']}.",
        "",
        "## Seeds and the inclusion rule (pi_0 only)",
        "",
        f"Rule: {doc['inclusion']['rule']['rule']} (margin {doc['inclusion']['rule'].get('margin', 0)}). Included:"
        f" {', '.join(map(str, seeds['included'])) or 'none'} of {', '.join(map(str, all_seeds))}; pi_0 failure"
        f" rate {_pct(doc['pi0_failure_rate'], 0)}%.",
        "",
        "| seed | pi_0 greedy | pi_0 pass@1 | constant guess | pi_0 final loss | included |",
        "|---|---|---|---|---|---|",
    ]
    for s in all_seeds:
        v = _seed(doc["inclusion"]["per_seed"], s)
        loss = "-" if v["pi0_final_loss"] is None else f"{v['pi0_final_loss']:.3f}"
        lines.append(
            f"| {s} | {_pct(v['pi0_greedy'])} | {_pct(v['pi0_pass1'])} | {_pct(v['constant_guess'])} | {loss}"
            f" | {'yes' if v['included'] else 'no'} |"
        )
    for name, rows in doc["families"].items():
        verdict = name == "primary"
        lines += ["", f"## Family `{name}`: all seeds", ""] + comparison_table(rows, "all", verdict)
        lines += ["", f"Included seeds only (`{name}`):", ""] + comparison_table(rows, "included", verdict)
    lines += ["", "## Every model", ""]
    lines += [
        "| model | seeds | greedy [95% CI] | pass@1 | "
        + " | ".join(f"s{s}" for s in all_seeds)
        + " | questions covered | selected valid |",
        "|---|---|---|---|" + "---|" * len(all_seeds) + "---|---|",
    ]
    for m, a in doc["accuracy"].items():
        cov = doc["coverage"].get(m, {})
        per = " | ".join(_pct(_seed(a["greedy"]["per_seed"], s)) for s in all_seeds)
        lines.append(
            f"| {m}: {doc['arms'].get(m, 'pi_0')} | {a['greedy']['all']['n']} | {_ci(a['greedy']['all'])}"
            f" | {_ci(a['pass1']['all'])} | {per} | {_pct(cov.get('questions_covered_frac'), 0)}"
            f" | {_pct(cov.get('selected_valid_frac'), 0)} |"
        )
    lines.append(
        f"| constant guess | {doc['constant_guess']['n']} | {_ci(doc['constant_guess'])} | - |"
        + " |" * len(all_seeds)
        + " - | - |"
    )
    lines += _mechanism(doc)
    return "\n".join(lines) + "\n"


def _mechanism(doc: dict) -> list[str]:
    d = doc["difficulty"]
    labels = d["labels"]
    lines = []
    g = doc.get("granularity")
    if g:
        lines += [
            "",
            "## Granularity: steps per operation of the traces trained on, by pi_0's accuracy on the question",
            "",
            "1.00 = one operation per step (the finest trace). Reference = the coarse original traces.",
            "",
            "| traces | all | " + " | ".join(labels) + " |",
            "|---|---|" + "---|" * len(labels),
        ]
        for n, v in g["mean"].items():
            cells = " | ".join("-" if x is None else f"{x:.2f}" for x in v["by_bin"])
            overall = "-" if v["all"] is None else f"{v['all']:.2f}"
            lines.append(f"| {n} | {overall} | {cells} |")
    lines += [
        "",
        "## Difficulty bins",
        "",
        "Share of training questions, and of each arm's selected mass, per bin of pi_0's own accuracy (%):",
        "",
        "| | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for k, v in d["mean_train_shares"].items():
        lines.append(f"| {k} | " + " | ".join(_pct(x, 0) for x in v) + " |")
    lines += [
        "",
        "Greedy gain over pi_0 per test-question bin, in points (test questions per bin: "
        + ", ".join(f"{lab} {_pct(x, 0)}%" for lab, x in zip(labels, d["mean_test_question_shares"], strict=True))
        + "):",
        "",
        "| model | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for m, v in d["mean_greedy_gain_by_bin"].items():
        lines.append(f"| {m} | " + " | ".join(_gain(x) for x in v) + " |")
    lines += [
        "",
        "## Importance weights",
        "",
        "| variant | seeds | ESS/K | IWAE bound K=1 / 2 / 4 / 8 | log w p05 / p50 / p95 | -inf | traces valid"
        " | wrong step among answer-reaching |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v, w in doc["weights"].items():
        bounds = " / ".join(
            f"{w['iwae_bound_by_k'][k]['mean']:.2f}" for k in ("1", "2", "4", "8") if k in w["iwae_bound_by_k"]
        )
        q = w["log_weight_quantiles"]
        qs = " / ".join("-" if q.get(k) is None else f"{q[k]:.2f}" for k in ("p05", "p50", "p95"))
        lines.append(
            f"| {v} | {w['seeds']} | {w['ess_over_k']['mean']:.2f} | {bounds} | {qs}"
            f" | {_pct(w['log_weight_neg_inf_frac'], 0)}%"
            f" | {_pct(w.get('traces_valid_frac'), 0)}% | {_pct(w.get('answer_reaching_wrong_step_frac'), 0)}% |"
        )
    lines += [
        "",
        "Wrong step among answer-reaching: of the traces after which pi_0 gives the reference answer probability"
        " > 0.5, the share with a wrong step (the answer reached by copying the hint, not by computing).",
    ]
    return lines


def readme_claims(doc: dict) -> str:
    """README's claims table: the primary family on all seeds, then the decomposition, from claims.json."""
    prov = doc["provenance"]
    lines = [
        README_BEGIN,
        "",
        f"`make claims` at commit `{(prov.get('commit') or '?')[:12]}` on {prov['cpu']} ({prov['cores']} cores),"
        f" {prov['date'][:10]}; seeds {len(doc['seeds']['all'])} (primary), pi_0 failure rate"
        f" {_pct(doc['pi0_failure_rate'], 0)}%. Greedy accuracy gain in points, 95% interval, p Holm-adjusted:",
        "",
        "| comparison | seeds (+) | gain [95% CI] | p t (Holm) | p sign-flip (Holm) | holds |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("primary", "decomposition"):
        for r in doc["families"].get(name, []):
            a = r["all"]
            holds = ("**yes**" if a["holds"] else "no") if name == "primary" else "(descriptive)"
            lines.append(
                f"| {r['a']} - {r['b']} | {a['n']} ({a.get('seeds_positive', 0)}) | {_ci(a, signed=True)}"
                f" | {_p(a.get('p_t_holm'))} | {_p(a.get('p_sign_holm'))} | {holds} |"
            )
    return "\n".join([*lines, "", README_END])
