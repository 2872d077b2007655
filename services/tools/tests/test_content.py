"""Skills and exercises are data files checked at start: a bad file stops the service with an
error that names it, before the service takes a single call."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from opencouch.tools.content import ContentError, content_root
from opencouch.tools.crisis import CrisisDirectory
from opencouch.tools.exercises import ExerciseCatalog
from opencouch.tools.service import Content
from opencouch.tools.skills import ResponseSkills

VOICE_SUITABLE = {
    "grounding_5_4_3_2_1",
    "grounding_box_breathing",
    "grounding_stop_technique",
    "grounding_muscle_relaxation",
    "self_compassion_break",
    "emotion_regulation_improve",
    "emotion_regulation_gratitude",
    "behavioral_activation_tiny_action",
    "defusion_values_compass",
    "thought_work_continuum",
}


@pytest.fixture
def content_copy(tmp_path: Path) -> Path:
    """A writable copy of the packaged skills and exercises."""
    packaged = Path(str(resources.files("opencouch.tools").joinpath("data")))
    for folder in ("skills", "exercises"):
        shutil.copytree(packaged / folder, tmp_path / folder)
    return tmp_path


def test_the_packaged_content_is_complete() -> None:
    content = Content.load(None)
    assert set(content.exercises.voice_suitable) == VOICE_SUITABLE
    box = content.exercises["grounding_box_breathing"]
    assert [step.id for step in box.steps] == ["inhale", "hold_full", "exhale", "hold_empty"]
    gratitude = content.exercises["emotion_regulation_gratitude"]
    assert (gratitude.steps[0].completion_mode, gratitude.steps[0].min_items) == ("items", 2)
    assert content.skills.skill("closing", "grief_support").skill_id == "closing.grief_support"


def test_the_crisis_data_has_a_source_and_a_date_on_every_row() -> None:
    directory = CrisisDirectory.packaged()
    for row in directory.rows:
        assert row.source_url.startswith("https://")
        assert row.verified_on.year >= 2026
        assert row.phone or row.text or row.url
    for entry in directory.emergency_numbers:
        assert entry.source_url.startswith("https://")


@pytest.mark.parametrize(
    ("folder", "file", "edit", "message"),
    [
        (
            "exercises",
            "grounding_box_breathing.toml",
            ('id = "inhale"', 'id = "exhale"'),
            "step ids repeat",
        ),
        (
            "exercises",
            "grounding_box_breathing.toml",
            ('channels = ["voice", "text"]', 'channels = ["text"]'),
            "voice_fit",
        ),
        ("exercises", "grounding_5_4_3_2_1.toml", ("min_items = 5\n", ""), "min_items"),
        (
            "exercises",
            "self_compassion_break.toml",
            ('completion_mode = "response"', 'completion_mode = "vibes"'),
            "completion_mode",
        ),
        ("exercises", "self_compassion_break.toml", ("[[steps]]", "[[steps"), "not valid TOML"),
        (
            "exercises",
            "thought_work_continuum.toml",
            ('id = "thought_work_continuum"', 'id = "grounding_box_breathing"'),
            "thought_work_continuum",
        ),
        ("skills", "cbt.toml", ('kind = "approach"', 'kind = "style"'), "unknown style: cbt"),
        ("skills", "supportive.toml", ("guidance = [", "advice = ["), "supportive"),
    ],
)
def test_a_bad_file_is_refused_with_its_name(
    content_copy: Path, folder: str, file: str, edit: tuple[str, str], message: str
) -> None:
    path = content_copy / folder / file
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ContentError, match=message) as raised:
        Content.load(content_copy)
    assert file.removesuffix(".toml") in str(raised.value) or message in str(raised.value)


def test_a_missing_exercise_or_skill_is_refused(content_copy: Path) -> None:
    (content_copy / "exercises" / "defusion_leaves_on_stream.toml").unlink()
    with pytest.raises(ContentError, match="defusion_leaves_on_stream"):
        ExerciseCatalog.load(content_root(content_copy))
    (content_copy / "skills" / "pfa.toml").unlink()
    with pytest.raises(ContentError, match="pfa"):
        ResponseSkills.load(content_root(content_copy))


def test_the_service_will_not_start_on_bad_content(content_copy: Path, tmp_path: Path) -> None:
    broken = content_copy / "exercises" / "grounding_stop_technique.toml"
    broken.write_text(broken.read_text().replace('voice_fit = "good"', 'voice_fit = "great"'))
    result = subprocess.run(
        [sys.executable, "-m", "opencouch.tools"],
        env={
            **os.environ,
            "TOOLS_CONTENT_DIR": str(content_copy),
            # Nothing to reach: content is checked before any connection is made.
            "TOOLS_NATS_URL": "nats://127.0.0.1:1",
            "TOOLS_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none",
            "TOOLS_REDIS_URL": "redis://127.0.0.1:1/0",
            "TOOLS_ID_FILE": str(tmp_path / "tools.id"),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "content is invalid" in result.stderr
    assert "grounding_stop_technique.toml" in result.stderr
    assert not (tmp_path / "tools.id").exists()
