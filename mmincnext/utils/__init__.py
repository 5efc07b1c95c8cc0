from .launch import (adapt_to_machine, build_model_from_config, build_runner, enable_amp, init_cpu_distributed,
                     load_tool_config, parse_tool_args, sync_bn_to_bn)

__all__ = [
    'adapt_to_machine', 'build_model_from_config', 'build_runner', 'enable_amp', 'init_cpu_distributed',
    'load_tool_config', 'parse_tool_args', 'sync_bn_to_bn'
]
