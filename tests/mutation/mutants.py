"""The named mutants of ``make mutation`` (tests/mutation/run.py): small, realistic bugs in the code where a silent
bug costs most, each with the tests that must catch it.

Each mutant replaces ``original`` (which must occur exactly once in ``path``) by ``replacement`` and runs ``tests``
(pytest arguments, from the repository root). A refactor that changes a snippet makes the check fail loudly until
the mutant here is updated to the new code. ``env`` adds environment variables to that pytest run.
"""
from typing import Dict, NamedTuple, Sequence


class Mutant(NamedTuple):
    name: str
    path: str
    original: str
    replacement: str
    tests: Sequence[str]
    bug: str  # what goes wrong for a user if it ships
    env: Dict[str, str] = {}


CHECKPOINT = 'mmincnext/checkpoint.py'
HOOKS = 'mmincnext/engine/hooks.py'
BACKBONE = 'mmincnext/models/backbones/metanext.py'
BLOCK = 'mmincnext/models/layers/metanext_block.py'
FAST_PATHS = 'mmincnext/models/layers/fast_paths.py'
MIXERS = 'mmincnext/models/layers/token_mixers.py'
LAYER_DECAY = 'mmincnext/engine/optimizers/layer_decay_optimizer_constructor.py'
REPORT = 'mmincnext/benchmark/report.py'
KERNEL = 'mmincnext/ops/inception_dwconv.py'

TEST_CHECKPOINT = 'tests/test_models/test_checkpoint.py'
UNPICKLING = [TEST_CHECKPOINT, '-k', 'payloads or abused or getattr or safe_globals or malicious or url']
STRICTNESS = [TEST_CHECKPOINT, '-k', 'other_width or other_depth or shape_mismatch or wrong_prefix']
TIMM_EQUALITY = ['tests/test_models/test_speed.py::test_training_step_equals_timm',
                 'tests/test_models/test_backbone.py', '-k', 'equals_timm or equal_timm and atto']
OUTPUTS = ['tests/test_models/test_backbone.py', '-k', 'output_norm or out_indices or frozen or norm_eval']
FOLDING = ['tests/test_models/test_speed.py', '-k', 'switch_to_deploy']
LAYER_DECAY_TESTS = ['tests/test_engine/test_layer_decay.py']
REPORT_TESTS = ['tests/test_tools/test_benchmark.py', '-k', 'report or mixer_network']
INTERPRETER = dict(TRITON_INTERPRET='1')
KERNEL_TESTS = ['tests/test_ops/test_fused_mixer.py', '--noconftest', '-k',
                'cpu-interpreter and (small_tiles or custom-k5)']

MUTANTS = [
    # -- checkpoint loading and the unpickling allow-list ----------------------------------------------------------
    Mutant('allow-list gains builtins.eval and builtins.exec', CHECKPOINT,
           '    HistoryBuffer,\n', '    HistoryBuffer,\n    eval,\n    exec,\n', UNPICKLING,
           'a checkpoint whose pickle calls eval(...) runs its code when loaded'),
    Mutant('allow-list gains subprocess.Popen', CHECKPOINT,
           '    HistoryBuffer,\n', '    HistoryBuffer,\n    __import__("subprocess").Popen,\n', UNPICKLING,
           'a checkpoint starts a process when loaded'),
    Mutant('allow-list holds the real getattr', CHECKPOINT,
           "    (_history_buffer_statistic, 'builtins.getattr'),", "    (getattr, 'builtins.getattr'),", UNPICKLING,
           "a pickle reaches any attribute of an allowed object, e.g. a function's module globals, and sets items"),
    Mutant('getattr stand-in ignores the owner', CHECKPOINT,
           'if owner is HistoryBuffer and name in _HISTORY_BUFFER_STATISTICS:',
           'if name in _HISTORY_BUFFER_STATISTICS:', UNPICKLING,
           "getattr(anything, 'mean') resolves in a checkpoint"),
    Mutant('own unpickler calls anything', CHECKPOINT,
           "        if not self._is_allowed(self.stack[-2]):\n            raise _RefusedGlobal(f'Refusing to call",
           "        if False:\n            raise _RefusedGlobal(f'Refusing to call", UNPICKLING,
           'torch < 2.6: a pickle calls what it obtained through an allowed name'),
    Mutant('own unpickler sets state of any object', CHECKPOINT,
           '        if type(self.stack[-2]) not in self._allowed_types:',
           '        if False:', UNPICKLING,
           'torch < 2.6: a pickle overwrites attributes of allowed classes (every HistoryBuffer in the process)'),
    Mutant('own unpickler path unpickles in full', CHECKPOINT,
           'weights_only=False, pickle_module=_WeightsOnlyPickleModule)', 'weights_only=False)', UNPICKLING,
           'torch < 2.6: every checkpoint is unpickled in full and can run code'),
    Mutant('strict loading ignores shape mismatches', CHECKPOINT,
           '    if missing or unexpected or mismatched:', '    if missing or unexpected:', STRICTNESS,
           'loading another width fails with torch\'s error instead of the listed mismatches (or loads partly)'),
    Mutant('strict loading ignores missing keys', CHECKPOINT,
           '    if missing or unexpected or mismatched:', '    if unexpected or mismatched:', STRICTNESS,
           'a shallower checkpoint loads silently, leaving the deeper blocks random'),
    Mutant('prefix selection keeps the prefix', CHECKPOINT,
           '    selected = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}',
           '    selected = {k: v for k, v in state_dict.items() if k.startswith(prefix)}',
           [TEST_CHECKPOINT, '-k', 'prefix'], "an mmengine checkpoint's backbone. keys never match the backbone"),

    # -- training hooks ------------------------------------------------------------------------------------------
    Mutant('non-finite check only catches NaN', HOOKS,
           '        if math.isfinite(loss):', '        if not math.isnan(loss):',
           ['tests/test_engine/test_runner_and_hooks.py', '-k', 'non_finite'], 'an infinite loss trains on'),
    Mutant('non-finite message names the previous iteration', HOOKS,
           "f'Non-finite loss at iteration {runner.iter + 1}", "f'Non-finite loss at iteration {runner.iter}",
           ['tests/test_engine/test_runner_and_hooks.py', '-k', 'non_finite'], 'the message points at the wrong batch'),
    Mutant('resume does not restore the random state', HOOKS,
           '            return\n        self._restore(runner, state)', '            return\n        pass',
           ['tests/test_engine/test_runner_and_hooks.py', '-k', 'resume'],
           'a resumed run draws other dropout masks than an uninterrupted one'),
    Mutant('EMA updated every iteration', HOOKS,
           '        if runner.optim_wrapper.should_update():', '        if True:',
           ['tests/test_configs/test_incnext_b_384.py', '-k', 'ema_is_timms'],
           "with gradient accumulation the EMA decays faster than timm's ModelEmaV2"),

    # -- the backbone: timm's numbers, outputs, options ----------------------------------------------------------
    Mutant('GELU tanh approximation (CPU fast path)', FAST_PATHS,
           '        y = F.gelu(y) if torch.is_grad_enabled()',
           "        y = F.gelu(y, approximate='tanh') if torch.is_grad_enabled()", TIMM_EQUALITY,
           "outputs drift from timm's and the released weights' (exact erf GELU)"),
    Mutant('Inception branches swapped', MIXERS,
           "self.conv_names = tuple(f'dwconv_{b}' for b in groups)",
           "self.conv_names = tuple(f'dwconv_{b}' for b in reversed(groups))", TIMM_EQUALITY,
           'the square kernel runs on the band channels: released weights give wrong features'),
    Mutant('layer scale folded under autocast', FAST_PATHS,
           'if gamma is not None and not is_autocast_enabled(x.device.type) and x.dtype in',
           'if gamma is not None and x.dtype in',
           ['tests/test_models/test_precision.py::test_fp16_keeps_tiny_layer_scale'],
           'float16 rounds W * 1e-6 to 0: every residual branch is lost at the start of training'),
    Mutant('last output norm skipped', BACKBONE,
           "                out = getattr(self, f'norm{i}')(x)\n",
           "                out = getattr(self, f'norm{i}')(x) if i < 3 else x\n", OUTPUTS,
           'the last output (stride 32) is not normalised, and norm3 never trains'),
    Mutant('outputs bypass their norms', BACKBONE,
           '                outs.append(out.contiguous(memory_format=memory_format) if self.block_type.channels_last '
           'else out)',
           '                outs.append(x.contiguous(memory_format=memory_format) if self.block_type.channels_last '
           'else x)', OUTPUTS, 'the output norms exist, load and train, but no output passes through them'),
    Mutant('negative out_indices not normalised', BACKBONE,
           '        return sorted(i % num_outputs for i in out_indices)',
           '        return sorted(i for i in out_indices)', OUTPUTS, 'out_indices=(-1,) returns nothing'),
    Mutant('frozen_stages freezes one stage too few', BACKBONE,
           'list(self.stages[:self.frozen_stages])', 'list(self.stages[:self.frozen_stages - 1])', OUTPUTS,
           'frozen_stages=2 trains stage 1'),
    Mutant('norm_eval ignored in training', BACKBONE,
           '        if mode and self.norm_eval:', '        if not mode and self.norm_eval:', OUTPUTS,
           'norm_eval=True still updates the BN statistics'),

    # -- deploy folding ------------------------------------------------------------------------------------------
    Mutant('BN folding without eps', BLOCK,
           'torch.rsqrt(bn.running_var + bn.eps)', 'torch.rsqrt(bn.running_var)', FOLDING,
           'deployed outputs differ where running variances are small'),
    Mutant('downsample fold drops the BN shift', BLOCK,
           '    conv.bias.add_((conv.weight * shift.view(1, -1, 1, 1)).sum((1, 2, 3)))\n', '', FOLDING,
           "the downsamples lose their BN's mean and bias when deployed"),
    Mutant('stem fold scales the bias only by the shift', BLOCK,
           '    conv.bias.mul_(scale).add_(shift)', '    conv.bias.add_(shift)', FOLDING,
           "the stem conv's bias is not scaled when deployed"),
    Mutant('block fold drops the BN shift', BLOCK,
           '            fc1.bias.add_(fc1.weight.flatten(1) @ shift)\n', '', FOLDING,
           "every block loses its BN's mean and bias when deployed"),
    Mutant('layer scale folded into fc2 weight only', BLOCK,
           '            fc2.bias.mul_(self.gamma)\n', '', FOLDING,
           "fc2's bias escapes the layer scale when deployed"),

    # -- layer-wise learning-rate decay -------------------------------------------------------------------------
    Mutant('downsample one layer early', LAYER_DECAY,
           '        return {1: 2, 2: 3}[stage_id]', '        return {1: 1, 2: 2}[stage_id]', LAYER_DECAY_TESTS,
           "downsamples train at their previous stage's rate, unlike ConvNeXt's rule"),
    Mutant('stage 2 blocks in groups of 2', LAYER_DECAY,
           '3 + int(parts[3]) // 3)[stage_id]', '3 + int(parts[3]) // 2)[stage_id]', LAYER_DECAY_TESTS,
           "stage 2's blocks decay faster than ConvNeXt's"),
    Mutant('stage-wise decay puts downsamples with their stage', LAYER_DECAY,
           "    if parts[0] == 'stem' or parts[0] == 'stages' and parts[2] == 'downsample':",
           "    if parts[0] == 'stem':", LAYER_DECAY_TESTS, 'stage-wise decay differs from mmseg\'s ConvNeXt rule'),
    Mutant('norm weights get weight decay', LAYER_DECAY,
           "            no_decay = param.ndim == 1 or name.endswith('.bias')",
           "            no_decay = name.endswith('.bias')", LAYER_DECAY_TESTS,
           'BN weights and layer scales decay towards 0'),
    Mutant('decay exponent off by one', LAYER_DECAY,
           'scale = decay_rate**(num_layers + 1 - layer_id)', 'scale = decay_rate**(num_layers - layer_id)',
           LAYER_DECAY_TESTS, 'the head trains faster than the base learning rate'),

    # -- the benchmark's arithmetic -----------------------------------------------------------------------------
    Mutant('speed ratio inverted', REPORT,
           "    return result['img_per_s'] / reference['img_per_s']",
           "    return reference['img_per_s'] / result['img_per_s']", REPORT_TESTS,
           'every ratio in the speed tables is inverted: 2x faster reads as 0.50'),
    Mutant('best layout is the slowest', REPORT,
           "r['img_per_s'] > best[r['model']]['img_per_s']", "r['img_per_s'] < best[r['model']]['img_per_s']",
           REPORT_TESTS, "each model is reported in its slowest memory layout"),
    Mutant('network time ignores the block counts', REPORT,
           "r['us_per_call'] * r['blocks']", "r['us_per_call']", REPORT_TESTS,
           "the mixer's network totals weigh a 3-block stage like a 27-block one"),
    Mutant('mixer speed-up over eager inverted', REPORT,
           "ratio = f'{eager / us:.2f}'", "ratio = f'{us / eager:.2f}'", REPORT_TESTS,
           'the fused kernel reads as slower than eager where it is faster'),

    # -- test-time augmentation, the OneDL config lookup, the fused kernel ---------------------------------------
    Mutant('single-scale TTA view is the flipped one', 'configs/_base_/default_runtime.py',
           "single_scale_view=4)", "single_scale_view=5)", ['tests/test_datasets/test_tta.py'],
           "--tta's single-scale mIoU comes from the flipped view"),
    Mutant('TTA ratios stop at 1.5', 'configs/_base_/datasets/ade20k.py',
           'img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]', 'img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5]',
           ['tests/test_datasets/test_tta.py'], "the multi-scale mIoU is not the paper's protocol"),
    Mutant('OneDL mmseg:: bases not remapped', 'mmincnext/compat.py',
           '        if not _distribution_installed(upstream) and _importable(module):',
           '        if _distribution_installed(upstream) and _importable(module):',
           ['tests/test_packaging/test_families.py', '-k', 'every_config_loads'],
           'every segmentation config fails to load under onedl-mmsegmentation'),
    Mutant('fused mixer reads one row past the image', KERNEL,
           'not per tap\n            row_ok = c_ok & (hh >= 0) & (hh < H)',
           'not per tap\n            row_ok = c_ok & (hh >= 0) & (hh <= H)',
           KERNEL_TESTS, "the fused kernel's bottom halo reads the next image's first row", env=INTERPRETER),
]
