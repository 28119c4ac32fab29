#!/usr/bin/env bash
# The package as a user installs it: build the wheel (through an sdist, so that only what the sdist ships
# can reach the wheel), install it into a fresh virtual environment outside the checkout, and from a folder
# outside the checkout run the console command, the demo, one epoch of training, the api, and a user's own
# config folder composed with the shipped configs. Fails on the first step that fails.
# Alone: .ci/wheel_check.sh   (builds with $PYTHON, default .venv/bin/python, which needs the dev extra's `build`;
# WHEEL_CHECK_FULL=1: every dependency installed afresh too, see below)
# In two halves, as .ci/run does (the fresh install, mostly downloads, runs while the tests do):
#   WHEEL_CHECK_DIR=DIR WHEEL_CHECK_FULL=1 .ci/wheel_check.sh install; ...; WHEEL_CHECK_DIR=DIR .ci/wheel_check.sh check
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
builder="${PYTHON:-$repo/.venv/bin/python}"
mode="${1:-all}"   # all, install or check
case "$mode" in all|install|check) ;; *) echo "usage: $0 [all|install|check]" >&2; exit 2 ;; esac
work="${WHEEL_CHECK_DIR:-$(mktemp -d)}"
mkdir -p "$work"
[ "$mode" = install ] || trap 'rm -rf "$work"' EXIT
unset PYTHONPATH
start=$SECONDS
step() { echo "== wheel check ($((SECONDS - start)) s): $*"; }

if [ "$mode" != check ]; then
step "build"
"$builder" -m build --outdir "$work/dist" "$repo" >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log"; exit 1; }
wheel=("$work"/dist/lightning_dlc-*.whl)
"$builder" -c "import sys, zipfile; 'lightning_dlc/conf/train.yaml' in zipfile.ZipFile(sys.argv[1]).namelist() \
    or sys.exit(sys.argv[1] + ' lacks lightning_dlc/conf')" "${wheel[0]}"

step "install ${wheel[0]##*/} into a fresh environment"
python3 -m venv "$work/venv"
if [ "${WHEEL_CHECK_FULL:-0}" != 1 ]; then
    # The third-party packages (the same pyproject's dependencies, installed by `pip install -e .[dev]`) are
    # seen from the builder's environment behind the fresh one's own (a path in a .pth file: that folder's own
    # .pth files, among them the checkout's editable install, stay inactive); pip adds only what is missing.
    # What this checks is the wheel itself: its files, configs and console command, away from the checkout.
    # WHEEL_CHECK_FULL=1 downloads and installs every dependency afresh instead (about 11 minutes here).
    "$builder" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" \
        >"$("$work/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/_dependencies.pth"
fi
"$work/venv/bin/pip" install "${wheel[0]}" >"$work/install.log" 2>&1 \
    || { grep -v "^WARNING: Location" "$work/install.log" | tail -n 40; exit 1; }
step "installed"
fi
[ "$mode" != install ] || exit 0
py="$work/venv/bin/python" cli="$work/venv/bin/lightning-dlc"
[ -x "$cli" ] || { echo "wheel check: no installed wheel in $work (run the install half first)" >&2; exit 1; }

mkdir "$work/run" && cd "$work/run"
# the package, not the checkout, is what runs
"$py" -c "import lightning_dlc, sys; f = lightning_dlc.__file__; sys.exit(0 if f.startswith(sys.argv[1]) else f)" \
    "$work/venv/"

step "lightning-dlc --help"
"$cli" --help >"$work/help.txt"
grep -q "make-demo" "$work/help.txt"

step "lightning-dlc make-demo"
"$cli" make-demo out="$work/run/demo" n_frames=24 n_labeled=16 size=128

tiny=(data.project="$work/run/demo" data.num_workers=0 data.batch_size=4 trainer.max_epochs=1 eval_interval=1
      snapshots.save_epochs=1 trainer.enable_progress_bar=false)
step "lightning-dlc train (1 epoch)"
"$cli" train "${tiny[@]}" hydra.run.dir=runs/shipped | tee "$work/train.log"
grep -q "^Trained 1 epochs" "$work/train.log"
test -f runs/shipped/snapshot-001.ckpt

step "lightning-dlc train --config-dir (a user's own model beside the shipped configs)"
mkdir -p my_conf/model
cat >my_conf/model/my_resnet.yaml <<'EOF'
defaults:
  - /heads@heads: bottom_up   # a shipped group, composed into the user's model
  - _self_
_target_: lightning_dlc.models.pose_model.build_pose_model
backbone:
  _target_: lightning_dlc.models.backbones.TimmBackbone
  name: regnetx_002
  out_index: 3
  pretrained: false
  weights: null
neck: null
EOF
"$cli" train --config-dir "$work/run/my_conf" model=my_resnet "${tiny[@]}" hydra.run.dir=runs/mine
grep -q "name: regnetx_002" runs/mine/run_config.yaml
test -f runs/mine/snapshot-001.ckpt

step "api.train_network + api.evaluate_network"
"$py" - "$work/run/demo/config.yaml" <<'EOF'
import sys

from lightning_dlc import api

config = sys.argv[1]
api.train_network(config, shuffle=1, epochs=1, save_epochs=1, batch_size=4, net_type="resnet_18",
                  overrides=["model.backbone.pretrained=false", "data.num_workers=0", "eval_interval=0",
                             "trainer.enable_progress_bar=false"])
table = api.evaluate_network(config, shuffles=[1])
assert set(table["split"]) == {"train", "test"}, table
print(table.to_string())
EOF
step "passed"
