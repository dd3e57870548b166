"""Preview sheets of clips without GL: a small numpy mesh rasteriser (pinhole camera, Lambert
shading, z-buffer, 2x supersampling), a built-in 6x10 bitmap font and a PNG writer, so the
engine (and a headless machine) can show people what a corpus looks like.

``corpus_preview(corpus, out)`` draws one row per clip (key frames across) with its level-1
caption underneath; ``render_sheet(rows, out)`` draws procedural clips (packaging/preview_synth.py).
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

VIEWS = {  # camera eye position (world, metres); all look at TARGET with +y up
    "front": (0.12, 0.38, 0.2),  # the performer's view: behind and above the hands, a little right
    "facing": (0.0, 0.25, -0.85),  # from in front, facing the performer
    "side": (0.6, 0.2, -0.25),
    "top": (0.0, 0.7, -0.25),
}
TARGET = np.array([0.0, 0.04, -0.32], np.float32)
FOCAL = 2.7  # screen half-height per unit of depth-normalised height
HAND_COLORS = ((0.93, 0.66, 0.50), (0.58, 0.72, 0.93))  # left warm, right cool: as in the app
BACKGROUND = (33, 36, 41)


# --- camera and shading -------------------------------------------------------------------------

def project(v: np.ndarray, eye) -> np.ndarray:
    """World (..., 3) -> (x, y) on a screen of height 2 (y up) and a depth for ordering (pinhole)."""
    eye = np.asarray(eye, np.float32)
    back = eye - TARGET
    back = back / np.linalg.norm(back)
    right = np.cross([0.0, 1.0, 0.0], back)
    if np.linalg.norm(right) < 1e-6:  # looking straight down
        right = np.array([1.0, 0.0, 0.0])
    right = right / np.linalg.norm(right)
    up = np.cross(back, right)
    c = (v - eye) @ np.stack([right, up, back], 1)  # camera frame: x right, y up, z toward the eye
    depth = np.maximum(-c[..., 2:], 1e-3)
    return np.concatenate([FOCAL * c[..., :2] / depth, depth - 1.0], -1).astype(np.float32)


def lit_colors(v: np.ndarray, faces: np.ndarray, base, eye) -> np.ndarray:
    """Per-vertex two-sided Lambert shading, light from the eye and a little above. (V, 3) in 0..1."""
    tri = v[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    light = np.asarray(eye, np.float32) - v + np.array([0.0, 0.3, 0.0], np.float32)
    light /= np.linalg.norm(light, axis=1, keepdims=True)
    lam = np.abs((n * light).sum(1, keepdims=True))
    return (np.asarray(base[:3], np.float32) * (0.3 + 0.7 * lam)).astype(np.float32)


# --- rasteriser -----------------------------------------------------------------------------------

def rasterize(screen: np.ndarray, faces: np.ndarray, colors: np.ndarray, size: tuple[int, int],
              background=BACKGROUND, supersample: int = 2) -> np.ndarray:
    """Triangles -> (H, W, 3) uint8. ``screen`` (V, 3): x, y on a screen of height 2 (y up,
    x spans +-W/H) and a depth (smaller = nearer); ``colors`` (V, 3) in 0..1, interpolated.
    Every covered pixel centre keeps its nearest sample (z-buffer by sorting)."""
    W, H = size[0] * supersample, size[1] * supersample
    px = np.stack([screen[:, 0] * H / 2 + W / 2, H / 2 - screen[:, 1] * H / 2], 1).astype(np.float64)  # (V, 2)
    tri = px[faces]  # (F, 3, 2)
    d0, d1, d2 = (tri[:, k] for k in range(3))
    area = (d1[:, 0] - d0[:, 0]) * (d2[:, 1] - d0[:, 1]) - (d1[:, 1] - d0[:, 1]) * (d2[:, 0] - d0[:, 0])  # (F,)
    lo = np.floor(tri.min(1) - 0.5).astype(np.int64)
    hi = np.ceil(tri.max(1) - 0.5).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [W - 1, H - 1])
    ext = (hi - lo).max(1) + 1  # (F,)
    ok = (np.abs(area) > 1e-9) & (hi[:, 0] >= lo[:, 0]) & (hi[:, 1] >= lo[:, 1])
    pix_all, z_all, c_all = [], [], []
    for b_lo, b_hi in ((1, 2), (3, 4), (5, 8), (9, 16), (17, 32), (33, 64), (65, 128), (129, 1 << 30)):
        sel = np.flatnonzero(ok & (ext >= b_lo) & (ext <= b_hi))
        if not len(sel):
            continue
        B = int(ext[sel].max())
        g = np.arange(B)
        x = lo[sel, 0, None, None] + g[None, None, :] + 0.5  # (f, 1, B)
        y = lo[sel, 1, None, None] + g[None, :, None] + 0.5  # (f, B, 1)
        a, b, c = tri[sel, 0], tri[sel, 1], tri[sel, 2]  # (f, 2)

        def edge(p, q):  # signed area of (p, q, pixel) -> (f, B, B)
            return ((q[:, 0] - p[:, 0])[:, None, None] * (y - p[:, 1, None, None])
                    - (q[:, 1] - p[:, 1])[:, None, None] * (x - p[:, 0, None, None]))
        ar = area[sel][:, None, None]
        w0, w1, w2 = edge(b, c) / ar, edge(c, a) / ar, edge(a, b) / ar  # barycentric of a, b, c
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        inside &= (x <= hi[sel, 0, None, None] + 0.5) & (y <= hi[sel, 1, None, None] + 0.5)
        fi, yi, xi = np.nonzero(inside)
        if not len(fi):
            continue
        f = sel[fi]
        W0, W1, W2 = w0[fi, yi, xi], w1[fi, yi, xi], w2[fi, yi, xi]
        vid = faces[f]  # (k, 3)
        z = W0 * screen[vid[:, 0], 2] + W1 * screen[vid[:, 1], 2] + W2 * screen[vid[:, 2], 2]
        col = W0[:, None] * colors[vid[:, 0]] + W1[:, None] * colors[vid[:, 1]] + W2[:, None] * colors[vid[:, 2]]
        pix_all.append((lo[f, 1] + yi) * W + lo[f, 0] + xi)
        z_all.append(z)
        c_all.append(col)
    img = np.empty((H * W, 3), np.float32)
    img[:] = np.asarray(background, np.float32) / 255.0
    if pix_all:
        pix, z, col = np.concatenate(pix_all), np.concatenate(z_all), np.concatenate(c_all)
        order = np.lexsort((z, pix))
        first = np.ones(len(order), bool)
        first[1:] = pix[order][1:] != pix[order][:-1]
        keep = order[first]
        img[pix[keep]] = col[keep]
    img = img.reshape(H, W, 3)
    s = supersample
    img = img.reshape(H // s, s, W // s, s, 3).mean((1, 3))
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


# --- text -------------------------------------------------------------------------------------------

# ASCII 32..126 of the public-domain X11 "6x10" fixed font: 10 rows per glyph, top 6 bits used.
_FONT_HEX = (
    "0000000000000000000000080808080800080000001414140000000000000014143e143e1414000000081c281c0a1c080000"
    "00122a1408142a24000000102828102a241a0000000808080000000000000004081010100804000000100804040408100000"
    "000022143e1422000000000008083e08080000000000000000000c081000000000003e0000000000000000000000081c0800"
    "0002020408102020000000081422222214080000000818280808083e0000001c22020c10203e0000003e02040c02221c0000"
    "00040c14243e04040000003e202c3202221c0000000c10202c32221c0000003e0204040810100000001c22221c22221c0000"
    "001c22261a02041800000000081c0800081c08000000081c08000c081000000204081008040200000000003e003e00000000"
    "00100804020408100000001c2204080800080000001c22262a2c201c000000081422223e22220000003c12121c12123c0000"
    "001c22202020221c0000003c12121212123c0000003e20203c20203e0000003e20203c2020200000001c22202026221c0000"
    "002222223e2222220000001c08080808081c0000000e040404042418000000222428302824220000002020202020203e0000"
    "002222362a2222220000002222322a2622220000001c22222222221c0000003c22223c2020200000001c222222222a1c0200"
    "003c22223c2824220000001c22201c02221c0000003e0808080808080000002222222222221c000000222222141414080000"
    "002222222a2a362200000022221408142222000000222214080808080000003e02040810203e0000001c10101010101c0000"
    "00202010080402020000001c04040404041c00000008142200000000000000000000000000003e0008040000000000000000"
    "0000001c021e221e00000020202c3222322c00000000001c2220221c00000002021a2622261a00000000001c223e201c0000"
    "000c12103c10101000000000001e22221e02221c0020202c322222220000000800180808081c00000002000602020212120c"
    "00202022243824220000001808080808081c0000000000342a2a2a2200000000002c3222222200000000001c2222221c0000"
    "0000002c3222322c20200000001a2622261a02020000002c3220202000000000001c201c023c00000010103c1010120c0000"
    "000000222222261a00000000002222141408000000000022222a2a140000000000221408142200000000002222261a02221c"
    "0000003e0408103e000000060804180408060000000808080808080800000018040806080418000000122a24000000000000"
)
_GLYPHS = np.unpackbits(np.frombuffer(bytes.fromhex("".join(_FONT_HEX)), np.uint8).reshape(95, 10, 1),
                        axis=2)[:, :, 2:].astype(bool)  # (95, 10, 6)
GLYPH_W, GLYPH_H = 6, 10


def draw_text(img: np.ndarray, x: int, y: int, text: str, color=(235, 235, 235), scale: int = 1) -> None:
    """Draw one line of ASCII into ``img`` (H, W, 3) uint8 at top-left (x, y); clipped at the edges."""
    for k, ch in enumerate(text):
        code = ord(ch) - 32 if 32 <= ord(ch) < 127 else ord("?") - 32
        g = _GLYPHS[code]
        if scale > 1:
            g = g.repeat(scale, 0).repeat(scale, 1)
        x0 = x + k * GLYPH_W * scale
        h, w = g.shape
        ys, xs = np.nonzero(g)
        ys, xs = ys + y, xs + x0
        inb = (ys >= 0) & (ys < img.shape[0]) & (xs >= 0) & (xs < img.shape[1])
        img[ys[inb], xs[inb]] = color


def wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap to ``width`` characters."""
    lines, cur = [], ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    return lines + ([cur] if cur else [])


# --- PNG --------------------------------------------------------------------------------------------

def write_png(path: str | Path, img: np.ndarray) -> Path:
    """(H, W, 3) uint8 -> an RGB PNG (zlib only)."""
    img = np.ascontiguousarray(img, np.uint8)
    H, W = img.shape[:2]
    raw = np.concatenate([np.zeros((H, 1), np.uint8), img.reshape(H, W * 3)], 1).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    path = Path(path)
    from engine.motion.clip import atomic_write
    atomic_write(path, lambda f: f.write(png))
    return path


# --- sheets -----------------------------------------------------------------------------------------

def render_frames(clip, frames, tile=(260, 200), view: str = "front") -> list[np.ndarray]:
    """Both hand meshes of ``clip`` at the given frames -> one (H, W, 3) tile each."""
    import torch

    from engine.hands import default_hands_cpu
    hands = default_hands_cpu()
    eye = VIEWS[view]
    idx = np.asarray(frames, np.int64)
    with torch.no_grad():
        verts, _ = hands(torch.from_numpy(clip.betas), torch.from_numpy(clip.global_orient[idx]),
                         torch.from_numpy(clip.hand_pose[idx]), torch.from_numpy(clip.transl[idx]))
    faces = (hands.left.faces, hands.right.faces)
    tiles = []
    for k in range(len(idx)):
        vs, fs, cs, offset = [], [], [], 0
        for h in range(2):
            v = verts[h][k].numpy()
            fs.append(np.asarray(faces[h]) + offset)
            offset += len(v)
            vs.append(project(v, eye))
            cs.append(lit_colors(v, np.asarray(faces[h]), HAND_COLORS[h], eye))
        tiles.append(rasterize(np.concatenate(vs), np.concatenate(fs), np.concatenate(cs), tile))
    return tiles


def sheet(rows: list[dict], cols: int = 5, tile=(260, 200), view: str = "front") -> np.ndarray:
    """Rows of {"clip", "title", "caption", "labels"} -> one image: key frames across, the title on
    the first tile, active action labels on each tile, the caption wrapped under the row."""
    width = cols * tile[0]
    out = []
    for row in rows:
        clip = row["clip"]
        idx = np.linspace(0, clip.num_frames - 1, cols).round().astype(int)
        tiles = render_frames(clip, idx, tile, view)
        for k, (t, im) in enumerate(zip(idx, tiles)):
            active = [lb["action"] for lb in row.get("labels", [])
                      if lb.get("start_frame", 0) <= t < lb.get("end_frame", 0)]
            draw_text(im, 4, 4, f"f{t} " + ",".join(active), (230, 230, 230))
            if k == 0 and row.get("title"):
                draw_text(im, 4, tile[1] - 14, row["title"][: tile[0] // GLYPH_W - 1], (255, 250, 150))
            im[:, -1] = 70  # tile separator
        strip = np.concatenate(tiles, 1)
        lines = wrap(row.get("caption", ""), width // GLYPH_W - 2) or [""]
        band = np.full((len(lines) * (GLYPH_H + 3) + 8, width, 3), 18, np.uint8)
        for j, line in enumerate(lines):
            draw_text(band, 6, 4 + j * (GLYPH_H + 3), line, (250, 250, 250))
        out += [strip, band, np.full((2, width, 3), 90, np.uint8)]
    return np.concatenate(out, 0)


def label_title(labels: list[dict]) -> str:
    return " + ".join(f"{lb['action']}({lb.get('hands', '')} {lb.get('start_frame', '')}-{lb.get('end_frame', '')})"
                      for lb in labels)


def render_sheet(rows, out: str | Path, cols: int = 5, tile=(260, 200), view: str = "front") -> np.ndarray:
    """(clip, labels) pairs from the procedural generator -> a PNG sheet at ``out``."""
    from engine.data.captions import caption_clip
    items = [{"clip": clip, "labels": labels, "title": label_title(labels),
              "caption": caption_clip(clip, level=1, actions=labels)["text"]} for clip, labels in rows]
    image = sheet(items, cols, tile, view)
    write_png(out, image)
    return image


def corpus_preview(corpus, out: str | Path, n: int = 6, cols: int = 5, split: str | None = "test", seed: int = 0,
                   tile=(260, 200), view: str = "front") -> Path:
    """``n`` clips of a corpus split (seeded choice) -> a PNG sheet with their level-1 captions."""
    from engine.data.corpus import Corpus
    c = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    if not 1 <= n <= 64 or not 1 <= cols <= 16:
        raise ValueError(f"n must be 1..64 and cols 1..16; got {n}, {cols}")
    pos = [i for i, r in enumerate(c.index) if split is None or r["split"] == split]
    if not pos:
        raise ValueError(f"{c.path}: split {split!r} is empty")
    pick = sorted(np.random.default_rng(int(seed)).choice(pos, size=min(n, len(pos)), replace=False).tolist())
    rows = []
    for i in pick:
        rec = c.index[i]
        labels = [a for a in rec["actions"] if isinstance(a, dict)]
        rows.append({"clip": c.clip(i), "labels": labels,
                     "title": f"{rec['id']} " + (label_title(labels) if labels else str(rec["source"])),
                     "caption": f"{rec['id']}: {rec['texts'][0]['text']}"})
    return write_png(out, sheet(rows, cols, tile, view))
