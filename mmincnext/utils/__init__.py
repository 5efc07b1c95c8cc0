from .launch import CPUBF16OptimWrapper, adapt_to_machine, enable_amp, init_cpu_distributed, sync_bn_to_bn

__all__ = ['CPUBF16OptimWrapper', 'adapt_to_machine', 'enable_amp', 'init_cpu_distributed', 'sync_bn_to_bn']
