"""The README against the code: every asset, job, schedule, sensor, pool, policy and environment
variable it must name, the values it states about them, and every command it quotes (checked
against the installed `dagster` and `mlops` command lines, without running them)."""

import contextlib
import io
import re
import shlex
from datetime import timedelta
from pathlib import Path

import click
import dagster as dg
import pytest

from mlops_assets.core import profiles
from mlops_assets.definitions import defs
from mlops_assets.serving import config as serving_config

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
ENV_EXAMPLE = (REPO / ".env.example").read_text()
USE_CASES = ("fraud", "demand", "housing", "heart", "athletes")
GRAPH = defs.resolve_asset_graph()
FENCED = re.compile(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```", flags=re.M | re.S)
# The README with the inside of its code blocks blanked (offsets kept): a `# comment` line in a
# bash block is not a heading.
MASKED = FENCED.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), README)
KEYS = sorted(GRAPH.get_all_asset_keys())


# -- reading the README -------------------------------------------------------------------------


def _section(heading: str) -> str:
    """The text under the first heading that starts with ``heading`` (``## x`` or ``### x``), up
    to the next heading of the same or a higher level."""
    match = re.search(rf"^(#+) {re.escape(heading)}.*$", MASKED, flags=re.M)
    assert match, f"README has no heading {heading!r}"
    level = len(match.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", flags=re.M).search(MASKED, match.end())
    return README[match.end() : end.start() if end else len(README)]


def _use_case_section(use_case: str) -> str:
    if use_case == "serving":
        return _section("Online predictions")
    match = re.search(rf"^## Use case: .*\(`{use_case}`", MASKED, flags=re.M)
    assert match, f"README has no section for use case {use_case!r}"
    return _section(match.group(0)[3:])


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced code block, indented ones (in lists) included."""
    return FENCED.findall(text)


def _table_rows(text: str) -> dict[str, list[str]]:
    """Rows of the markdown tables in ``text`` by the backquoted names in their first cell."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        for name in re.findall(r"`([^`]+)`", cells[0]):
            rows[name] = cells
    return rows


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


# -- assets, jobs, schedules and sensors ------------------------------------------------------


def _use_case_of(key: dg.AssetKey) -> str:
    return key.path[0]


def _job_use_case(job_name: str) -> str:
    job = defs.resolve_job_def(job_name)
    [use_case] = {_use_case_of(k) for k in job.asset_layer.selected_asset_keys}
    return use_case


def test_every_asset_is_named_and_drawn_in_its_use_case_graph() -> None:
    assert len(KEYS) >= 36
    for key in KEYS:
        name = key.to_user_string()
        assert f"`{name}`" in README, name
        graphs = "\n".join(
            body for lang, body in _fenced_blocks(_use_case_section(_use_case_of(key))) if not lang
        )
        assert re.search(rf"\b{re.escape(key.path[-1])}\b", graphs), f"{name} not in its graph"


def test_every_job_schedule_and_sensor_is_named_in_its_use_case_section() -> None:
    for job in defs.jobs:
        assert f"`{job.name}`" in _use_case_section(_job_use_case(job.name)), job.name
    for schedule in defs.schedules:
        resolved = defs.resolve_schedule_def(schedule.name)
        section = _use_case_section(_job_use_case(resolved.job_name))
        assert f"`{resolved.name}`" in section, resolved.name
    for sensor in defs.sensors:
        if sensor.name == "mlops_automation":
            continue
        # Documented with the use case it watches: the one its name starts with (the API's drift
        # sensor, `serving_...`, retrains three use cases).
        use_case = sensor.name.split("_", 1)[0]
        targets = {
            _use_case_of(key)
            for target in sensor.targets
            for key in defs.resolve_job_def(target.job_name).asset_layer.selected_asset_keys
        }
        assert use_case == "serving" or targets == {use_case}, (sensor.name, targets)
        assert f"`{sensor.name}`" in _use_case_section(use_case), sensor.name


def test_the_schedule_table_states_cadence_job_and_default_status() -> None:
    rows = _table_rows(_section("Schedules and sensors"))
    schedules = [defs.resolve_schedule_def(s.name) for s in defs.schedules]
    assert len(schedules) == 9
    for schedule in schedules:
        _, cadence, runs, default, why = rows[schedule.name]
        minute, hour = schedule.cron_schedule.split()[:2]
        assert f"{int(hour):02d}:{int(minute):02d}" in cadence, schedule.name
        assert f"`{schedule.job_name}`" in runs, schedule.name
        expected = (
            "running" if schedule.default_status == dg.DefaultScheduleStatus.RUNNING else "stopped"
        )
        assert default == expected, schedule.name
        assert why, schedule.name
    for sensor in defs.sensors:
        _, cadence, runs, default, why = rows[sensor.name]
        assert f"every {sensor.minimum_interval_seconds} s" in cadence, sensor.name
        assert default == "running" and sensor.default_status == dg.DefaultSensorStatus.RUNNING
        assert why, sensor.name
    for name, target in (
        ("fraud_rescore_on_champion_change", "fraud/scores"),
        ("demand_reforecast_on_champion_change", "demand/forecasts"),
    ):
        assert f"`{target}`" in rows[name][2]


def test_automation_pools_freshness_and_backfill_policies_match_the_code() -> None:
    automated = {k.to_user_string() for k in KEYS if GRAPH.get(k).automation_condition is not None}
    listed = set(_table_rows(_section("Assets that keep themselves up to date")))
    assert listed == automated

    pools = _table_rows(_section("Concurrency"))
    for key in KEYS:
        for op in GRAPH.assets_def_for_key(key).node_def.iterate_op_defs():
            if op.pool:
                assert f"`{key.to_user_string()}`" in pools[op.pool][1], (op.pool, key)

    def shown(window: timedelta) -> str:
        days = window / timedelta(days=1)
        return f"{int(days)} days" if days >= 7 else f"{int(window / timedelta(hours=1))} h"

    freshness = _table_rows(_section("Freshness"))
    fresh = {k.to_user_string(): GRAPH.get(k).freshness_policy for k in KEYS}
    fresh = {k: p for k, p in fresh.items() if p is not None}
    assert set(freshness) >= set(fresh) and len(fresh) == 6
    for name, policy in fresh.items():
        _, _, warn, fail = freshness[name]
        assert warn.startswith(shown(policy.warn_window.to_timedelta())), name
        assert fail.startswith(shown(policy.fail_window.to_timedelta())), name

    backfill = _section("Backfill policies")
    single, multi = backfill.split("**One run per partition**")
    for key in KEYS:
        assets_def = GRAPH.assets_def_for_key(key)
        policy = assets_def.backfill_policy
        if policy is None:
            continue
        name = f"`{key.to_user_string()}`"
        text = single if policy == dg.BackfillPolicy.single_run() else multi
        assert name in text, (name, policy)


# -- environment variables --------------------------------------------------------------------

_READS = [
    r'environ(?:\.get|\.setdefault|\.pop)?\(\s*"([A-Z][A-Z0-9_]+)"',
    r'environ\[\s*"([A-Z][A-Z0-9_]+)"\s*\]',
    r'getenv\(\s*"([A-Z][A-Z0-9_]+)"',
]
_CONSTANT = re.compile(r'^([A-Z][A-Z0-9_]*)\s*(?::\s*\w+)?\s*=\s*"([A-Z][A-Z0-9_]+)"', flags=re.M)


def _variables_read_by_the_code() -> set[str]:
    found: set[str] = set()
    for path in (REPO / "mlops_assets").rglob("*.py"):
        text = path.read_text()
        for pattern in _READS:
            found.update(re.findall(pattern, text))
        found.update(
            value
            for name, value in _CONSTANT.findall(text)
            if name.endswith(("_ENV", "_VAR")) or name == value
        )
    return found


def test_every_environment_variable_is_in_the_configuration_table_and_env_example() -> None:
    settings = {
        profiles.PROFILE_ENV,
        *profiles.ENV_VARS.values(),
        *serving_config.ENV_VARS.values(),
    }
    table = set(_table_rows(_section("Configuration: every environment variable")))
    code = _variables_read_by_the_code()
    assert {"OMP_WAIT_POLICY", "FEAST_S3_ENDPOINT_URL", "MLOPS_DEMAND_INGEST_RETRY_DELAY_S"} <= code
    required = (
        settings
        | code
        | {
            "DAGSTER_HOME",
            "DAGSTER_POSTGRES_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "EIA_API_KEY",
        }
    )
    assert required - table == set()
    for var in settings:
        assert re.search(rf"^#?\s*{var}=", ENV_EXAMPLE, flags=re.M), f"{var} not in .env.example"


def test_the_configuration_table_states_the_profile_defaults() -> None:
    rows = _table_rows(_section("Configuration: every environment variable"))
    for setting, var in profiles.ENV_VARS.items():
        default = profiles._DEFAULTS["local"][setting]
        if default and "{" not in default:
            assert f"`{default}`" in rows[var][1], var
        stack = profiles._DEFAULTS["stack"][setting]
        if stack and "{" not in stack and stack != default:
            assert f"`{stack}`" in rows[var][2], var
    serving = serving_config.ServingConfig()
    assert "`10`" in rows["MLOPS_SERVING_POLL_S"][1] and serving.poll_s == 10
    assert f"`{serving.max_body_bytes}`" in rows["MLOPS_SERVING_MAX_BODY_BYTES"][1]


# -- links and commands -----------------------------------------------------------------------


def test_every_link_to_a_section_has_its_heading() -> None:
    anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", MASKED, flags=re.M)}
    links = set(re.findall(r"\]\(#([^)]+)\)", README))
    assert links, "no section links"
    assert links - anchors == set()


def _quoted_commands() -> list[list[str]]:
    """Every ``dagster``, ``dagster-daemon`` and ``mlops`` command the README quotes: lines of
    ``bash`` blocks (continuations joined), ``$(...)`` inside them, and inline code."""
    lines: list[str] = []
    outside = FENCED.sub("", README)
    for lang, body in _fenced_blocks(README):
        if lang == "bash":
            joined = re.sub(r"\\\n\s*", " ", body)
            lines += joined.splitlines()
            lines += re.findall(r"\$\(([^)]*)\)", joined)
    lines += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", outside)]
    commands = []
    for line in lines:
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.commenters = "#"
            lexer.wordchars += "$:,{}[]<>@+"
            tokens = list(lexer)
        except ValueError:
            continue
        command: list[str] = []
        for token in [*tokens, ";"]:
            if token in (";", "&&", "||", "|", "(", ")"):
                if command:
                    commands.append(command)
                command = []
            elif command or not re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", token):
                command.append(token)
        if command:
            commands.append(command)
    programs = ("dagster", "dagster-daemon", "mlops")
    return [
        [c[0].removeprefix(".venv/bin/"), *c[1:]]
        for c in commands
        if c and c[0].removeprefix(".venv/bin/") in programs
    ]


def _click_command(program: str, words: list[str]) -> tuple[click.Command, list[str]]:
    """The click command that ``program words...`` runs, and the words after it."""
    if program == "dagster":
        from dagster._cli import cli
    else:
        from dagster._daemon.cli import cli
    command: click.Command = cli
    rest = list(words)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        assert rest[0] in command.commands, f"`{program} ... {rest[0]}` is not a command"
        command = command.commands[rest.pop(0)]
    return command, rest


def _options(args: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in args if re.fullmatch(r"--?[a-zA-Z][\w-]*(=.*)?", a)]


def test_every_quoted_command_exists_with_its_options() -> None:
    commands = _quoted_commands()
    quoted = {" ".join(c[:3]) for c in commands}
    assert {"dagster job backfill", "dagster asset materialize", "mlops dev"} <= quoted
    for program, *words in commands:
        if program == "mlops":
            continue
        command, rest = _click_command(program, words)
        if not words:
            continue  # the program named alone, in prose
        if isinstance(command, click.Group):
            # Inline prose may name a group ("`dagster job`"), never a code block.
            assert not rest, f"`{program} {' '.join(words)}` names no command"
            continue
        known = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        unknown = [o for o in _options(rest) if o not in known]
        assert not unknown, f"`{program} {' '.join(words)}`: unknown options {unknown}"


def test_every_quoted_mlops_command_exists_with_its_options() -> None:
    from mlops_assets.tooling.cli import main

    checked = 0
    for _, *words in (c for c in _quoted_commands() if c[0] == "mlops"):
        if not words or words[0].startswith("<"):
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
            main([words[0], "--help"])
        assert exit_.value.code == 0, f"`mlops {words[0]}` is not a command"
        for option in _options(words[1:]):
            assert option in out.getvalue(), f"`mlops {words[0]}` has no option {option}"
        checked += 1
    assert checked >= 5
