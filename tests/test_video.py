"""Video upscaling: tiny clips (64x48, ~1 s) made with the bundled ffmpeg."""
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from paddle_mmsr.image.video_io import VideoError, ffmpeg_exe, probe, read_frames, write_video

ROOT = Path(__file__).resolve().parents[1]
TOOL = str(ROOT / "tools" / "upscale_video.py")
BUNDLE = ROOT / "pretrained" / "mmsr_x4_robust"  # the default of the command line tool
FPS, N = 25, 30   # 1.2 s


def pan(photo, n=N, h=48, w=64, y=150, x=180):
    """A slow pan: the window moves right by half a pixel per frame (alternate frames)."""
    return [np.ascontiguousarray(photo[y:y + h, x + i // 2:x + i // 2 + w]) for i in range(n)]


def seconds(path, stream: str) -> float:
    """Decoded length of the first ``stream`` (v or a) of ``path``."""
    r = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path),
                        "-map", f"0:{stream}:0", "-f", "null", "-"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-500:]
    h, m, s = re.findall(r"time=(\d+):(\d+):([\d.]+)", r.stderr)[-1]
    return int(h) * 3600 + int(m) * 60 + float(s)


@pytest.fixture(scope="module")
def clips(tmp_path_factory, photos):
    d = tmp_path_factory.mktemp("clips")
    astro = photos["astronaut"]
    gray = np.repeat(photos["camera"][:, :, None], 3, axis=2)
    return {"colour": write_video(d / "pan.mp4", pan(astro), FPS, tone=440),
            "gray": write_video(d / "gray.mp4", pan(gray), FPS, tone=330),
            "silent": write_video(d / "silent.mp4", pan(astro, n=10), FPS),
            "odd": write_video(d / "odd.mp4", pan(astro, n=8, h=49, w=65), FPS, tone=440)}


@pytest.fixture(scope="module")
def sr():
    from paddle_mmsr.sr.reconstruct import MMSR
    return MMSR.load(BUNDLE)


@pytest.fixture(scope="module")
def upscaled(clips, sr, tmp_path_factory):
    from paddle_mmsr.sr.video import upscale_video
    out = tmp_path_factory.mktemp("up") / "pan_x4.mp4"
    r = upscale_video(sr, clips["colour"], out, segment=0.2, progress=False)
    return out, r


def test_size_frames_duration_and_audio_kept(clips, upscaled):
    out, r = upscaled
    src, dst = probe(clips["colour"]), probe(out)
    assert r["complete"] and r["segments"] == 6
    assert (dst.width, dst.height) == (4 * src.width, 4 * src.height)
    assert dst.frames == src.frames == N and dst.fps == src.fps
    assert abs(dst.duration - src.duration) <= 1 / FPS
    assert dst.audio == ["aac"]
    assert abs(seconds(out, "a") - seconds(clips["colour"], "a")) <= 1 / FPS
    assert abs(seconds(out, "v") - seconds(clips["colour"], "v")) <= 1 / FPS
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # no parts, no temp


def test_kill_then_rerun_equals_uninterrupted(clips, upscaled, tmp_path):
    out = tmp_path / "killed.mp4"
    parts = tmp_path / ".killed.mp4.parts"
    cmd = [sys.executable, TOOL, str(clips["colour"]), "-o", str(out), "--segment", "0.2", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not (parts / "seg_000001.json").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (parts / "seg_000000.mkv").exists() and not out.exists()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-1500:]
    made = int(re.search(r"(\d+) of 6 segments made", r.stderr).group(1))
    assert 0 <= made < 6  # the rerun skipped what the killed run had finished
    a, b = list(read_frames(out)), list(read_frames(upscaled[0]))
    assert len(a) == len(b) == N
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert abs(seconds(out, "a") - seconds(upscaled[0], "a")) < 1e-3
    assert not parts.exists()


def test_gray_stays_gray(clips, sr, tmp_path):
    from paddle_mmsr.sr.video import upscale_video
    out = tmp_path / "gray_x4.mkv"
    upscale_video(sr, clips["gray"], out, progress=False)
    frames = list(read_frames(out))
    assert len(frames) == N and frames[0].shape == (192, 256, 3)
    for f in frames[::7]:
        f = f.astype(int)
        assert np.abs(f[:, :, 0] - f[:, :, 1]).max() <= 1 and np.abs(f[:, :, 2] - f[:, :, 1]).max() <= 1
        assert f.std() > 10  # a picture, not a flat frame


def test_lossless_equals_the_image_api_and_range(clips, sr, tmp_path):
    from paddle_mmsr.sr.video import upscale_video
    out = tmp_path / "lossless.mkv"
    r = upscale_video(sr, clips["colour"], out, lossless=True, stability=0, start=0.4,
                      duration=0.4, progress=False)
    assert r["frames"] == 10
    src = list(read_frames(clips["colour"]))[10:20]
    got = list(read_frames(out))
    assert len(got) == 10
    for a, b in zip(src[::3], got[::3]):
        assert np.array_equal(sr.upscale(a), b)
    assert abs(seconds(out, "a") - 0.4) <= 1 / FPS and abs(seconds(out, "v") - 0.4) <= 1 / FPS


def test_no_audio_odd_size_and_bad_inputs(clips, sr, tmp_path):
    from paddle_mmsr.sr.video import upscale_video
    notes = []
    out = tmp_path / "silent_x4.mp4"
    upscale_video(sr, clips["silent"], out, progress=False, log=notes.append)
    assert probe(out).audio == [] and probe(out).frames == 10
    assert any("no audio" in n for n in notes)
    odd = tmp_path / "odd_x4.mp4"
    upscale_video(sr, clips["odd"], odd, progress=False)
    info = probe(odd)
    assert (info.width, info.height, info.frames, info.audio) == (260, 196, 8, ["aac"])
    text = tmp_path / "notes.mp4"
    text.write_text("not a film\n")
    with pytest.raises(VideoError, match="not a video"):
        upscale_video(sr, text, tmp_path / "x.mp4", progress=False)
    tone = tmp_path / "tone.m4a"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.5",
                    "-c:a", "aac", str(tone)], check=True)
    with pytest.raises(VideoError, match="no video stream"):
        upscale_video(sr, tone, tmp_path / "y.mp4", progress=False)
    with pytest.raises(FileExistsError):
        upscale_video(sr, clips["silent"], out, progress=False)
    with pytest.raises(VideoError, match="must end in"):
        upscale_video(sr, clips["silent"], tmp_path / "z.avi", progress=False)
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "y.mp4").exists()


def test_cli_reports_bad_input(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    r = subprocess.run([sys.executable, TOOL, str(bad), "-o", str(tmp_path / "o.mp4")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "not a video" in r.stderr and not (tmp_path / "o.mp4").exists()


def test_variable_rate_and_interlaced_inputs(clips, tmp_path):
    vfr = tmp_path / "vfr.mkv"  # drop every third frame, keep the timestamps: steps of 1 and 2
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(clips["colour"]), "-vf",
                    "select='mod(n\\,3)'", "-fps_mode", "vfr", "-an", "-c:v", "libx264",
                    str(vfr)], check=True)
    info = probe(vfr)
    assert info.vfr and any("variable frame rate" in n for n in info.notes)
    assert info.filters[-1].startswith("fps=")
    assert abs(info.frames / float(info.fps) - seconds(vfr, "v")) <= 2 / float(info.fps)
    inter = tmp_path / "inter.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(clips["colour"]), "-an",
                    "-c:v", "libx264", "-flags", "+ilme+ildct", "-x264opts", "tff=1",
                    str(inter)], check=True)
    info = probe(inter)
    assert info.interlaced and info.filters[0].startswith("yadif") and info.frames == N
    assert not probe(inter, deinterlace="off").interlaced


def test_stable_router_holds_classes_near_a_bound(sr):
    from paddle_mmsr.sr.route import route
    from paddle_mmsr.sr.video import StableRouter
    bound = next(b for b in sr.bundle.tvat.bounds if b > 0)  # a bound some tiles cross
    wobble = [np.array([bound * 0.97, bound * 3]), np.array([bound * 1.03, bound * 3])] * 5
    plain = [route(s, sr.bundle) for s in wobble]
    assert sum((a != b).sum() for a, b in zip(plain, plain[1:])) == 9  # flips every frame
    router = StableRouter(sr.bundle, margin=0.1)
    held = [router(s, route(s, sr.bundle)) for s in wobble]
    assert all(np.array_equal(h, held[0]) for h in held)
    jump = np.array([bound * 1.5, bound * 3])
    assert router(jump, route(jump, sr.bundle))[0] == route(jump, sr.bundle)[0] != held[0][0]
    with pytest.raises(ValueError):
        StableRouter(sr.bundle, margin=-1)


def test_cli_progress_lines_short_clip_note_and_crf_with_lossless(clips, tmp_path):
    out = tmp_path / "silent_x4.mp4"
    r = subprocess.run([sys.executable, TOOL, str(clips["silent"]), "-o", str(out)],
                       capture_output=True, text=True, timeout=300)  # stderr is a pipe: lines
    assert r.returncode == 0, r.stderr[-1500:]
    assert "frame 10/10 (100%)" in r.stderr and "min left" in r.stderr
    assert "the clip is one segment (10 s): a stopped run starts over" in r.stderr
    r = subprocess.run([sys.executable, TOOL, str(clips["silent"]), "-o", str(tmp_path / "l.mp4"),
                        "--crf", "20", "--lossless"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--crf and --lossless exclude each other" in r.stderr
    assert not (tmp_path / "l.mp4").exists()


def test_interrupt_says_what_it_kept(clips, tmp_path):
    from paddle_mmsr.sr.video import interrupted_note
    out = tmp_path / "stopped.mp4"
    assert "a new run starts over" in interrupted_note(out, 10)  # nothing finished yet
    parts = tmp_path / ".stopped.mp4.parts"
    cmd = [sys.executable, TOOL, str(clips["colour"]), "-o", str(out), "--segment", "0.2", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (parts / "seg_000000.json").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, err[-1500:]
    kept = len(list(parts.glob("seg_*.json")))
    assert kept >= 1 and f"interrupted: {kept} finished segment" in err and str(parts) in err


def test_pipelined_frames_equal_the_sequential_path(clips, sr, tmp_path):
    """Decode, upscale and encode overlapping in threads (depth 2) give the same
    frames, in order, as one after another (depth 0); several segments included."""
    from paddle_mmsr.sr.video import upscale_video
    got = {}
    for depth in (0, 2):
        out = tmp_path / f"d{depth}.mkv"
        r = upscale_video(sr, clips["colour"], out, lossless=True, stability=0.15, duration=0.6,
                          segment=0.2, progress=False, depth=depth)
        assert r["frames"] == 15 and r["segments"] == 3
        got[depth] = list(read_frames(out))
    assert len(got[0]) == len(got[2]) == 15
    assert all(np.array_equal(a, b) for a, b in zip(got[0], got[2]))
    assert not np.array_equal(got[2][0], got[2][-1])  # the pan moves: order is tested


def test_writer_failure_stops_the_pipeline(clips, sr, tmp_path, monkeypatch):
    from paddle_mmsr.image import video_io
    from paddle_mmsr.sr import video

    def broken(self, frame):
        raise VideoError("encoder stopped: disk full (simulated)")
    monkeypatch.setattr(video_io.SegmentWriter, "write", broken)
    with pytest.raises(VideoError, match="disk full"):
        video.upscale_video(sr, clips["silent"], tmp_path / "x.mp4", progress=False)
    assert not (tmp_path / "x.mp4").exists()
