# What every task's runtime adds to its library's (mmincnext/engine): checkpoints written atomically, the
# random state saved in them so that --resume equals an uninterrupted run, and a stop at the first non-finite loss.
runner_type = 'MMIncNeXtRunner'
custom_hooks = [dict(type='NonFiniteLossHook'), dict(type='RandomStateHook')]
