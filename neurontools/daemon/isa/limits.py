"""Hardware and format limits of one NeuronCore-v2 (ref §2.3 on-chip memory, §3.2 tile rules),
the memories and the engines."""

from neurontools._proto import neurond_pb2 as pb

PARTITIONS = 128                      # SBUF and PSUM partitions; tile P <= 128 (TC#1)
SBUF_PARTITION_BYTES = 192 * 1024     # SBUF: 128 partitions x 192 KiB
PSUM_BANK_BYTES = 2 * 1024            # PSUM: 8 banks x 2 KiB per partition; a tile fits one bank (TC#2)
PSUM_BANKS = 8
MATMUL_MAX_STATIONARY_FREE = 128      # M <= 128 (gemm_stationary_fmax, TC#3)
MATMUL_MAX_MOVING_FREE = 512          # N <= 512 (gemm_moving_fmax, TC#3)
ENGINE_MAX_FREE = 64 * 1024           # Vector/Scalar free size per instruction (ref §3.2)
TENSOR_TRANSPOSE_MAX = 128            # nc_transpose on the Tensor engine: up to 128 x 128 (ref §3.4)
VECTOR_TRANSPOSE_MAX = 32             # ... on the Vector engine: up to 32 x 32
BN_STATS_MAX_FREE = 512               # bn_stats_fmax (ref §3.2)
BN_STATS_WIDTH = 6                    # bn_stats output per partition: (count, mean, var*count) x even/odd
HBM_MAX_RANK = 4


HBM, SBUF, PSUM = "HBM", "SBUF", "PSUM"
ENGINE_NAMES = {pb.TENSOR: "Tensor", pb.VECTOR: "Vector", pb.SCALAR: "Scalar", pb.GPSIMD: "GpSimd",
                 pb.DMA: "DMA"}
# What each compute engine reads and writes; the Tensor engine's rule is per operand (SBUF in, PSUM out).
ENGINE_SPACES = {pb.VECTOR: (SBUF, PSUM), pb.SCALAR: (SBUF, PSUM), pb.GPSIMD: (SBUF,)}
