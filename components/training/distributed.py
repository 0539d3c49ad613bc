"""Data-parallel training across processes (torchrun): gradients are averaged across
ranks as they are accumulated (per-parameter hooks, as DDP does in backward), so every
model's own train_step works unchanged; buffers (BatchNorm statistics) follow rank 0.
gloo on CPU, NCCL on CUDA.
"""
from __future__ import annotations

import os


class GradSync:
    def __init__(self):
        import torch
        import torch.distributed as dist

        self.rank = int(os.environ.get("RANK", 0))
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend)
        self.dist = dist

    def device(self):
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def wrap(self, optimizers: dict) -> dict:
        """Average every parameter's gradient across ranks once backward has produced it;
        start from rank 0's weights."""
        world, dist = self.world, self.dist

        def average(param):
            dist.all_reduce(param.grad)
            param.grad.div_(world)

        for opt in optimizers.values():
            for group in opt.param_groups:
                for p in group["params"]:
                    dist.broadcast(p.data, src=0)
                    p.register_post_accumulate_grad_hook(average)
        return optimizers

    def after_step(self, modules: dict) -> None:
        for module in modules.values():
            for buffer in module.buffers():
                self.dist.broadcast(buffer, src=0)

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()
