from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DTYPE_UNSPECIFIED: _ClassVar[DType]
    FLOAT32: _ClassVar[DType]
    TFLOAT32: _ClassVar[DType]
    BFLOAT16: _ClassVar[DType]
    FLOAT16: _ClassVar[DType]
    FLOAT8_E4M3: _ClassVar[DType]
    FLOAT8_E5M2: _ClassVar[DType]
    INT8: _ClassVar[DType]
    UINT8: _ClassVar[DType]
    INT16: _ClassVar[DType]
    INT32: _ClassVar[DType]
    UINT32: _ClassVar[DType]

class Placement(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLACEMENT_UNSPECIFIED: _ClassVar[Placement]
    DEVICE: _ClassVar[Placement]
    HOST: _ClassVar[Placement]

class MemoryCategory(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMORY_CATEGORY_UNSPECIFIED: _ClassVar[MemoryCategory]
    TENSORS: _ClassVar[MemoryCategory]
    CONSTANTS: _ClassVar[MemoryCategory]
    MODEL_CODE: _ClassVar[MemoryCategory]
    MODEL_SHARED_SCRATCHPAD: _ClassVar[MemoryCategory]
    NONSHARED_SCRATCHPAD: _ClassVar[MemoryCategory]
    RUNTIME_MEMORY: _ClassVar[MemoryCategory]
    DMA_RINGS: _ClassVar[MemoryCategory]
    COLLECTIVES: _ClassVar[MemoryCategory]
    DRIVER_MEMORY: _ClassVar[MemoryCategory]
    NOTIFICATIONS: _ClassVar[MemoryCategory]
    UNCATEGORIZED: _ClassVar[MemoryCategory]
    APPLICATION_MEMORY: _ClassVar[MemoryCategory]
    DMA_BUFFERS: _ClassVar[MemoryCategory]

class ExecutionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXECUTION_STATUS_UNSPECIFIED: _ClassVar[ExecutionStatus]
    COMPLETED: _ClassVar[ExecutionStatus]
    COMPLETED_WITH_ERR: _ClassVar[ExecutionStatus]
    COMPLETED_WITH_NUM_ERR: _ClassVar[ExecutionStatus]
    TIMED_OUT: _ClassVar[ExecutionStatus]
    INCORRECT_INPUT: _ClassVar[ExecutionStatus]
    FAILED_TO_QUEUE: _ClassVar[ExecutionStatus]

class ErrorKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_KIND_UNSPECIFIED: _ClassVar[ErrorKind]
    GENERIC: _ClassVar[ErrorKind]
    NUMERICAL: _ClassVar[ErrorKind]
    TRANSIENT: _ClassVar[ErrorKind]
    MODEL: _ClassVar[ErrorKind]
    RUNTIME: _ClassVar[ErrorKind]
    HARDWARE: _ClassVar[ErrorKind]

class Engine(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENGINE_UNSPECIFIED: _ClassVar[Engine]
    TENSOR: _ClassVar[Engine]
    VECTOR: _ClassVar[Engine]
    SCALAR: _ClassVar[Engine]
    GPSIMD: _ClassVar[Engine]
    DMA: _ClassVar[Engine]

class Buffer(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BUFFER_UNSPECIFIED: _ClassVar[Buffer]
    SBUF: _ClassVar[Buffer]
    PSUM: _ClassVar[Buffer]

class ParameterKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PARAMETER_KIND_UNSPECIFIED: _ClassVar[ParameterKind]
    INPUT: _ClassVar[ParameterKind]
    OUTPUT: _ClassVar[ParameterKind]

class ActivationFunction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTIVATION_FUNCTION_UNSPECIFIED: _ClassVar[ActivationFunction]
    COPY: _ClassVar[ActivationFunction]
    RELU: _ClassVar[ActivationFunction]
    GELU: _ClassVar[ActivationFunction]
    GELU_APPRX_TANH: _ClassVar[ActivationFunction]
    SIGMOID: _ClassVar[ActivationFunction]
    SILU: _ClassVar[ActivationFunction]
    TANH: _ClassVar[ActivationFunction]
    EXP: _ClassVar[ActivationFunction]
    LOG: _ClassVar[ActivationFunction]
    SQRT: _ClassVar[ActivationFunction]
    RSQRT: _ClassVar[ActivationFunction]
    SQUARE: _ClassVar[ActivationFunction]
    RECIPROCAL: _ClassVar[ActivationFunction]
    ABS: _ClassVar[ActivationFunction]
    SIGN: _ClassVar[ActivationFunction]
    ERF: _ClassVar[ActivationFunction]
    SOFTPLUS: _ClassVar[ActivationFunction]
    MISH: _ClassVar[ActivationFunction]
    SIN: _ClassVar[ActivationFunction]
    ARCTAN: _ClassVar[ActivationFunction]
    PRELU: _ClassVar[ActivationFunction]
    GELU_DX: _ClassVar[ActivationFunction]
    GELU_APPRX_SIGMOID: _ClassVar[ActivationFunction]
    GELU_APPRX_SIGMOID_DX: _ClassVar[ActivationFunction]
    SILU_DX: _ClassVar[ActivationFunction]
    ERF_DX: _ClassVar[ActivationFunction]

class AluOp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALU_OP_UNSPECIFIED: _ClassVar[AluOp]
    ADD: _ClassVar[AluOp]
    SUBTRACT: _ClassVar[AluOp]
    MULTIPLY: _ClassVar[AluOp]
    MAXIMUM: _ClassVar[AluOp]
    MINIMUM: _ClassVar[AluOp]
    DIVIDE: _ClassVar[AluOp]
    POWER: _ClassVar[AluOp]
    IS_EQUAL: _ClassVar[AluOp]
    NOT_EQUAL: _ClassVar[AluOp]
    IS_GT: _ClassVar[AluOp]
    IS_GE: _ClassVar[AluOp]
    IS_LT: _ClassVar[AluOp]
    IS_LE: _ClassVar[AluOp]
    LOGICAL_AND: _ClassVar[AluOp]
    LOGICAL_OR: _ClassVar[AluOp]
    LOGICAL_XOR: _ClassVar[AluOp]
    ABS_MAX: _ClassVar[AluOp]
    ABS_MIN: _ClassVar[AluOp]
    BITWISE_AND: _ClassVar[AluOp]
    BITWISE_OR: _ClassVar[AluOp]
    BITWISE_XOR: _ClassVar[AluOp]
    LEFT_SHIFT: _ClassVar[AluOp]
    RIGHT_SHIFT: _ClassVar[AluOp]
    AVERAGE: _ClassVar[AluOp]

class Arrivals(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARRIVALS_UNSPECIFIED: _ClassVar[Arrivals]
    CONSTANT: _ClassVar[Arrivals]
    POISSON: _ClassVar[Arrivals]

class LoadState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOAD_STATE_UNSPECIFIED: _ClassVar[LoadState]
    LOAD_RUNNING: _ClassVar[LoadState]
    LOAD_DRAINING: _ClassVar[LoadState]
    LOAD_FINISHED: _ClassVar[LoadState]
    LOAD_STOPPED: _ClassVar[LoadState]

class FaultKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAULT_KIND_UNSPECIFIED: _ClassVar[FaultKind]
    MEM_ECC_CORRECTED: _ClassVar[FaultKind]
    MEM_ECC_UNCORRECTED: _ClassVar[FaultKind]
    SRAM_ECC_CORRECTED: _ClassVar[FaultKind]
    SRAM_ECC_UNCORRECTED: _ClassVar[FaultKind]
    CORE_HANG: _ClassVar[FaultKind]
    NUMERICAL_ERROR: _ClassVar[FaultKind]
    LINK_DOWN: _ClassVar[FaultKind]
    DEVICE_RESET: _ClassVar[FaultKind]
DTYPE_UNSPECIFIED: DType
FLOAT32: DType
TFLOAT32: DType
BFLOAT16: DType
FLOAT16: DType
FLOAT8_E4M3: DType
FLOAT8_E5M2: DType
INT8: DType
UINT8: DType
INT16: DType
INT32: DType
UINT32: DType
PLACEMENT_UNSPECIFIED: Placement
DEVICE: Placement
HOST: Placement
MEMORY_CATEGORY_UNSPECIFIED: MemoryCategory
TENSORS: MemoryCategory
CONSTANTS: MemoryCategory
MODEL_CODE: MemoryCategory
MODEL_SHARED_SCRATCHPAD: MemoryCategory
NONSHARED_SCRATCHPAD: MemoryCategory
RUNTIME_MEMORY: MemoryCategory
DMA_RINGS: MemoryCategory
COLLECTIVES: MemoryCategory
DRIVER_MEMORY: MemoryCategory
NOTIFICATIONS: MemoryCategory
UNCATEGORIZED: MemoryCategory
APPLICATION_MEMORY: MemoryCategory
DMA_BUFFERS: MemoryCategory
EXECUTION_STATUS_UNSPECIFIED: ExecutionStatus
COMPLETED: ExecutionStatus
COMPLETED_WITH_ERR: ExecutionStatus
COMPLETED_WITH_NUM_ERR: ExecutionStatus
TIMED_OUT: ExecutionStatus
INCORRECT_INPUT: ExecutionStatus
FAILED_TO_QUEUE: ExecutionStatus
ERROR_KIND_UNSPECIFIED: ErrorKind
GENERIC: ErrorKind
NUMERICAL: ErrorKind
TRANSIENT: ErrorKind
MODEL: ErrorKind
RUNTIME: ErrorKind
HARDWARE: ErrorKind
ENGINE_UNSPECIFIED: Engine
TENSOR: Engine
VECTOR: Engine
SCALAR: Engine
GPSIMD: Engine
DMA: Engine
BUFFER_UNSPECIFIED: Buffer
SBUF: Buffer
PSUM: Buffer
PARAMETER_KIND_UNSPECIFIED: ParameterKind
INPUT: ParameterKind
OUTPUT: ParameterKind
ACTIVATION_FUNCTION_UNSPECIFIED: ActivationFunction
COPY: ActivationFunction
RELU: ActivationFunction
GELU: ActivationFunction
GELU_APPRX_TANH: ActivationFunction
SIGMOID: ActivationFunction
SILU: ActivationFunction
TANH: ActivationFunction
EXP: ActivationFunction
LOG: ActivationFunction
SQRT: ActivationFunction
RSQRT: ActivationFunction
SQUARE: ActivationFunction
RECIPROCAL: ActivationFunction
ABS: ActivationFunction
SIGN: ActivationFunction
ERF: ActivationFunction
SOFTPLUS: ActivationFunction
MISH: ActivationFunction
SIN: ActivationFunction
ARCTAN: ActivationFunction
PRELU: ActivationFunction
GELU_DX: ActivationFunction
GELU_APPRX_SIGMOID: ActivationFunction
GELU_APPRX_SIGMOID_DX: ActivationFunction
SILU_DX: ActivationFunction
ERF_DX: ActivationFunction
ALU_OP_UNSPECIFIED: AluOp
ADD: AluOp
SUBTRACT: AluOp
MULTIPLY: AluOp
MAXIMUM: AluOp
MINIMUM: AluOp
DIVIDE: AluOp
POWER: AluOp
IS_EQUAL: AluOp
NOT_EQUAL: AluOp
IS_GT: AluOp
IS_GE: AluOp
IS_LT: AluOp
IS_LE: AluOp
LOGICAL_AND: AluOp
LOGICAL_OR: AluOp
LOGICAL_XOR: AluOp
ABS_MAX: AluOp
ABS_MIN: AluOp
BITWISE_AND: AluOp
BITWISE_OR: AluOp
BITWISE_XOR: AluOp
LEFT_SHIFT: AluOp
RIGHT_SHIFT: AluOp
AVERAGE: AluOp
ARRIVALS_UNSPECIFIED: Arrivals
CONSTANT: Arrivals
POISSON: Arrivals
LOAD_STATE_UNSPECIFIED: LoadState
LOAD_RUNNING: LoadState
LOAD_DRAINING: LoadState
LOAD_FINISHED: LoadState
LOAD_STOPPED: LoadState
FAULT_KIND_UNSPECIFIED: FaultKind
MEM_ECC_CORRECTED: FaultKind
MEM_ECC_UNCORRECTED: FaultKind
SRAM_ECC_CORRECTED: FaultKind
SRAM_ECC_UNCORRECTED: FaultKind
CORE_HANG: FaultKind
NUMERICAL_ERROR: FaultKind
LINK_DOWN: FaultKind
DEVICE_RESET: FaultKind

class InstanceInfo(_message.Message):
    __slots__ = ("instance_name", "instance_id", "instance_type", "availability_zone", "availability_zone_id", "region", "ami_id", "subnet_id")
    INSTANCE_NAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_ZONE_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_ZONE_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    AMI_ID_FIELD_NUMBER: _ClassVar[int]
    SUBNET_ID_FIELD_NUMBER: _ClassVar[int]
    instance_name: str
    instance_id: str
    instance_type: str
    availability_zone: str
    availability_zone_id: str
    region: str
    ami_id: str
    subnet_id: str
    def __init__(self, instance_name: _Optional[str] = ..., instance_id: _Optional[str] = ..., instance_type: _Optional[str] = ..., availability_zone: _Optional[str] = ..., availability_zone_id: _Optional[str] = ..., region: _Optional[str] = ..., ami_id: _Optional[str] = ..., subnet_id: _Optional[str] = ...) -> None: ...

class HardwareInfo(_message.Message):
    __slots__ = ("neuron_device_type", "neuron_device_version", "neuroncore_version", "device_arch", "core_arch", "device_name", "platform_name", "neuroncore_per_device_count", "neuron_device_memory_size", "logical_neuroncore_config", "pci_vendor_id", "pci_device_id")
    NEURON_DEVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    NEURON_DEVICE_VERSION_FIELD_NUMBER: _ClassVar[int]
    NEURONCORE_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ARCH_FIELD_NUMBER: _ClassVar[int]
    CORE_ARCH_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_NAME_FIELD_NUMBER: _ClassVar[int]
    NEURONCORE_PER_DEVICE_COUNT_FIELD_NUMBER: _ClassVar[int]
    NEURON_DEVICE_MEMORY_SIZE_FIELD_NUMBER: _ClassVar[int]
    LOGICAL_NEURONCORE_CONFIG_FIELD_NUMBER: _ClassVar[int]
    PCI_VENDOR_ID_FIELD_NUMBER: _ClassVar[int]
    PCI_DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    neuron_device_type: str
    neuron_device_version: str
    neuroncore_version: str
    device_arch: str
    core_arch: str
    device_name: str
    platform_name: str
    neuroncore_per_device_count: int
    neuron_device_memory_size: int
    logical_neuroncore_config: int
    pci_vendor_id: int
    pci_device_id: int
    def __init__(self, neuron_device_type: _Optional[str] = ..., neuron_device_version: _Optional[str] = ..., neuroncore_version: _Optional[str] = ..., device_arch: _Optional[str] = ..., core_arch: _Optional[str] = ..., device_name: _Optional[str] = ..., platform_name: _Optional[str] = ..., neuroncore_per_device_count: _Optional[int] = ..., neuron_device_memory_size: _Optional[int] = ..., logical_neuroncore_config: _Optional[int] = ..., pci_vendor_id: _Optional[int] = ..., pci_device_id: _Optional[int] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("index", "core_ids", "memory_bytes", "hbm_stack_bytes", "connected_to", "bdf", "cpu_affinity", "numa_node", "serial_number")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CORE_IDS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    HBM_STACK_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_TO_FIELD_NUMBER: _ClassVar[int]
    BDF_FIELD_NUMBER: _ClassVar[int]
    CPU_AFFINITY_FIELD_NUMBER: _ClassVar[int]
    NUMA_NODE_FIELD_NUMBER: _ClassVar[int]
    SERIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    index: int
    core_ids: _containers.RepeatedScalarFieldContainer[int]
    memory_bytes: int
    hbm_stack_bytes: _containers.RepeatedScalarFieldContainer[int]
    connected_to: _containers.RepeatedScalarFieldContainer[int]
    bdf: str
    cpu_affinity: str
    numa_node: int
    serial_number: str
    def __init__(self, index: _Optional[int] = ..., core_ids: _Optional[_Iterable[int]] = ..., memory_bytes: _Optional[int] = ..., hbm_stack_bytes: _Optional[_Iterable[int]] = ..., connected_to: _Optional[_Iterable[int]] = ..., bdf: _Optional[str] = ..., cpu_affinity: _Optional[str] = ..., numa_node: _Optional[int] = ..., serial_number: _Optional[str] = ...) -> None: ...

class Link(_message.Message):
    __slots__ = ("link_id", "device_a", "device_b", "bandwidth_bytes_per_second")
    LINK_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_A_FIELD_NUMBER: _ClassVar[int]
    DEVICE_B_FIELD_NUMBER: _ClassVar[int]
    BANDWIDTH_BYTES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    link_id: int
    device_a: int
    device_b: int
    bandwidth_bytes_per_second: int
    def __init__(self, link_id: _Optional[int] = ..., device_a: _Optional[int] = ..., device_b: _Optional[int] = ..., bandwidth_bytes_per_second: _Optional[int] = ...) -> None: ...

class Topology(_message.Message):
    __slots__ = ("instance", "hardware", "vcpu_count", "host_memory_bytes", "devices", "links", "shape")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    VCPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    HOST_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    instance: InstanceInfo
    hardware: HardwareInfo
    vcpu_count: int
    host_memory_bytes: int
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    links: _containers.RepeatedCompositeFieldContainer[Link]
    shape: str
    def __init__(self, instance: _Optional[_Union[InstanceInfo, _Mapping]] = ..., hardware: _Optional[_Union[HardwareInfo, _Mapping]] = ..., vcpu_count: _Optional[int] = ..., host_memory_bytes: _Optional[int] = ..., devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ..., links: _Optional[_Iterable[_Union[Link, _Mapping]]] = ..., shape: _Optional[str] = ...) -> None: ...

class Histogram(_message.Message):
    __slots__ = ("count", "sum_ns", "first_bucket", "bucket_counts")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SUM_NS_FIELD_NUMBER: _ClassVar[int]
    FIRST_BUCKET_FIELD_NUMBER: _ClassVar[int]
    BUCKET_COUNTS_FIELD_NUMBER: _ClassVar[int]
    count: int
    sum_ns: int
    first_bucket: int
    bucket_counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, count: _Optional[int] = ..., sum_ns: _Optional[int] = ..., first_bucket: _Optional[int] = ..., bucket_counts: _Optional[_Iterable[int]] = ...) -> None: ...

class ExecutionCounts(_message.Message):
    __slots__ = ("completed", "completed_with_err", "completed_with_num_err", "timed_out", "incorrect_input", "failed_to_queue")
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_WITH_ERR_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_WITH_NUM_ERR_FIELD_NUMBER: _ClassVar[int]
    TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    INCORRECT_INPUT_FIELD_NUMBER: _ClassVar[int]
    FAILED_TO_QUEUE_FIELD_NUMBER: _ClassVar[int]
    completed: int
    completed_with_err: int
    completed_with_num_err: int
    timed_out: int
    incorrect_input: int
    failed_to_queue: int
    def __init__(self, completed: _Optional[int] = ..., completed_with_err: _Optional[int] = ..., completed_with_num_err: _Optional[int] = ..., timed_out: _Optional[int] = ..., incorrect_input: _Optional[int] = ..., failed_to_queue: _Optional[int] = ...) -> None: ...

class ErrorCounts(_message.Message):
    __slots__ = ("generic", "numerical", "transient", "model", "runtime", "hardware")
    GENERIC_FIELD_NUMBER: _ClassVar[int]
    NUMERICAL_FIELD_NUMBER: _ClassVar[int]
    TRANSIENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    generic: int
    numerical: int
    transient: int
    model: int
    runtime: int
    hardware: int
    def __init__(self, generic: _Optional[int] = ..., numerical: _Optional[int] = ..., transient: _Optional[int] = ..., model: _Optional[int] = ..., runtime: _Optional[int] = ..., hardware: _Optional[int] = ...) -> None: ...

class MemoryUsage(_message.Message):
    __slots__ = ("category", "used_bytes", "peak_bytes")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    PEAK_BYTES_FIELD_NUMBER: _ClassVar[int]
    category: MemoryCategory
    used_bytes: int
    peak_bytes: int
    def __init__(self, category: _Optional[_Union[MemoryCategory, str]] = ..., used_bytes: _Optional[int] = ..., peak_bytes: _Optional[int] = ...) -> None: ...

class EngineCounters(_message.Message):
    __slots__ = ("engine", "busy_ns", "instructions")
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    BUSY_NS_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    engine: Engine
    busy_ns: int
    instructions: int
    def __init__(self, engine: _Optional[_Union[Engine, str]] = ..., busy_ns: _Optional[int] = ..., instructions: _Optional[int] = ...) -> None: ...

class CoreCounters(_message.Message):
    __slots__ = ("core_id", "device_index", "owner_session_id", "occupied_ns", "device_time_ns", "flops", "executions", "in_flight", "running", "engines", "memory")
    CORE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_INDEX_FIELD_NUMBER: _ClassVar[int]
    OWNER_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    OCCUPIED_NS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    FLOPS_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    ENGINES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    core_id: int
    device_index: int
    owner_session_id: int
    occupied_ns: int
    device_time_ns: int
    flops: int
    executions: int
    in_flight: int
    running: bool
    engines: _containers.RepeatedCompositeFieldContainer[EngineCounters]
    memory: _containers.RepeatedCompositeFieldContainer[MemoryUsage]
    def __init__(self, core_id: _Optional[int] = ..., device_index: _Optional[int] = ..., owner_session_id: _Optional[int] = ..., occupied_ns: _Optional[int] = ..., device_time_ns: _Optional[int] = ..., flops: _Optional[int] = ..., executions: _Optional[int] = ..., in_flight: _Optional[int] = ..., running: _Optional[bool] = ..., engines: _Optional[_Iterable[_Union[EngineCounters, _Mapping]]] = ..., memory: _Optional[_Iterable[_Union[MemoryUsage, _Mapping]]] = ...) -> None: ...

class HbmStack(_message.Message):
    __slots__ = ("size_bytes", "used_bytes", "free_bytes", "largest_free_bytes", "free_blocks", "allocations")
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    LARGEST_FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FREE_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    size_bytes: int
    used_bytes: int
    free_bytes: int
    largest_free_bytes: int
    free_blocks: int
    allocations: int
    def __init__(self, size_bytes: _Optional[int] = ..., used_bytes: _Optional[int] = ..., free_bytes: _Optional[int] = ..., largest_free_bytes: _Optional[int] = ..., free_blocks: _Optional[int] = ..., allocations: _Optional[int] = ...) -> None: ...

class DeviceCounters(_message.Message):
    __slots__ = ("device_index", "memory_total_bytes", "memory_used_bytes", "memory_peak_bytes", "materialized_bytes", "stacks", "memory", "mem_ecc_corrected", "mem_ecc_uncorrected", "sram_ecc_corrected", "sram_ecc_uncorrected", "resets")
    DEVICE_INDEX_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_PEAK_BYTES_FIELD_NUMBER: _ClassVar[int]
    MATERIALIZED_BYTES_FIELD_NUMBER: _ClassVar[int]
    STACKS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    MEM_ECC_CORRECTED_FIELD_NUMBER: _ClassVar[int]
    MEM_ECC_UNCORRECTED_FIELD_NUMBER: _ClassVar[int]
    SRAM_ECC_CORRECTED_FIELD_NUMBER: _ClassVar[int]
    SRAM_ECC_UNCORRECTED_FIELD_NUMBER: _ClassVar[int]
    RESETS_FIELD_NUMBER: _ClassVar[int]
    device_index: int
    memory_total_bytes: int
    memory_used_bytes: int
    memory_peak_bytes: int
    materialized_bytes: int
    stacks: _containers.RepeatedCompositeFieldContainer[HbmStack]
    memory: _containers.RepeatedCompositeFieldContainer[MemoryUsage]
    mem_ecc_corrected: int
    mem_ecc_uncorrected: int
    sram_ecc_corrected: int
    sram_ecc_uncorrected: int
    resets: int
    def __init__(self, device_index: _Optional[int] = ..., memory_total_bytes: _Optional[int] = ..., memory_used_bytes: _Optional[int] = ..., memory_peak_bytes: _Optional[int] = ..., materialized_bytes: _Optional[int] = ..., stacks: _Optional[_Iterable[_Union[HbmStack, _Mapping]]] = ..., memory: _Optional[_Iterable[_Union[MemoryUsage, _Mapping]]] = ..., mem_ecc_corrected: _Optional[int] = ..., mem_ecc_uncorrected: _Optional[int] = ..., sram_ecc_corrected: _Optional[int] = ..., sram_ecc_uncorrected: _Optional[int] = ..., resets: _Optional[int] = ...) -> None: ...

class LinkCounters(_message.Message):
    __slots__ = ("link_id", "bytes_a_to_b", "bytes_b_to_a", "up")
    LINK_ID_FIELD_NUMBER: _ClassVar[int]
    BYTES_A_TO_B_FIELD_NUMBER: _ClassVar[int]
    BYTES_B_TO_A_FIELD_NUMBER: _ClassVar[int]
    UP_FIELD_NUMBER: _ClassVar[int]
    link_id: int
    bytes_a_to_b: int
    bytes_b_to_a: int
    up: bool
    def __init__(self, link_id: _Optional[int] = ..., bytes_a_to_b: _Optional[int] = ..., bytes_b_to_a: _Optional[int] = ..., up: _Optional[bool] = ...) -> None: ...

class CoreMemory(_message.Message):
    __slots__ = ("core_id", "memory")
    CORE_ID_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    core_id: int
    memory: _containers.RepeatedCompositeFieldContainer[MemoryUsage]
    def __init__(self, core_id: _Optional[int] = ..., memory: _Optional[_Iterable[_Union[MemoryUsage, _Mapping]]] = ...) -> None: ...

class Subgraph(_message.Message):
    __slots__ = ("name", "core_id", "device_index", "device_memory", "host_memory")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CORE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_INDEX_FIELD_NUMBER: _ClassVar[int]
    DEVICE_MEMORY_FIELD_NUMBER: _ClassVar[int]
    HOST_MEMORY_FIELD_NUMBER: _ClassVar[int]
    name: str
    core_id: int
    device_index: int
    device_memory: _containers.RepeatedCompositeFieldContainer[MemoryUsage]
    host_memory: _containers.RepeatedCompositeFieldContainer[MemoryUsage]
    def __init__(self, name: _Optional[str] = ..., core_id: _Optional[int] = ..., device_index: _Optional[int] = ..., device_memory: _Optional[_Iterable[_Union[MemoryUsage, _Mapping]]] = ..., host_memory: _Optional[_Iterable[_Union[MemoryUsage, _Mapping]]] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model_id", "uuid", "name", "session_id", "subgraphs", "is_running", "executions")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SUBGRAPHS_FIELD_NUMBER: _ClassVar[int]
    IS_RUNNING_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    model_id: int
    uuid: str
    name: str
    session_id: int
    subgraphs: _containers.RepeatedCompositeFieldContainer[Subgraph]
    is_running: bool
    executions: int
    def __init__(self, model_id: _Optional[int] = ..., uuid: _Optional[str] = ..., name: _Optional[str] = ..., session_id: _Optional[int] = ..., subgraphs: _Optional[_Iterable[_Union[Subgraph, _Mapping]]] = ..., is_running: _Optional[bool] = ..., executions: _Optional[int] = ...) -> None: ...

class ExecutionStats(_message.Message):
    __slots__ = ("executions", "errors", "total_latency", "device_latency")
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_LATENCY_FIELD_NUMBER: _ClassVar[int]
    DEVICE_LATENCY_FIELD_NUMBER: _ClassVar[int]
    executions: ExecutionCounts
    errors: ErrorCounts
    total_latency: Histogram
    device_latency: Histogram
    def __init__(self, executions: _Optional[_Union[ExecutionCounts, _Mapping]] = ..., errors: _Optional[_Union[ErrorCounts, _Mapping]] = ..., total_latency: _Optional[_Union[Histogram, _Mapping]] = ..., device_latency: _Optional[_Union[Histogram, _Mapping]] = ...) -> None: ...

class SessionInfo(_message.Message):
    __slots__ = ("session_id", "pid", "command", "runtime_version", "tag", "core_ids", "host_memory", "core_memory", "stats", "opened_unix_ns", "tensors")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    CORE_IDS_FIELD_NUMBER: _ClassVar[int]
    HOST_MEMORY_FIELD_NUMBER: _ClassVar[int]
    CORE_MEMORY_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    OPENED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    pid: int
    command: str
    runtime_version: str
    tag: str
    core_ids: _containers.RepeatedScalarFieldContainer[int]
    host_memory: _containers.RepeatedCompositeFieldContainer[MemoryUsage]
    core_memory: _containers.RepeatedCompositeFieldContainer[CoreMemory]
    stats: ExecutionStats
    opened_unix_ns: int
    tensors: int
    def __init__(self, session_id: _Optional[int] = ..., pid: _Optional[int] = ..., command: _Optional[str] = ..., runtime_version: _Optional[str] = ..., tag: _Optional[str] = ..., core_ids: _Optional[_Iterable[int]] = ..., host_memory: _Optional[_Iterable[_Union[MemoryUsage, _Mapping]]] = ..., core_memory: _Optional[_Iterable[_Union[CoreMemory, _Mapping]]] = ..., stats: _Optional[_Union[ExecutionStats, _Mapping]] = ..., opened_unix_ns: _Optional[int] = ..., tensors: _Optional[int] = ...) -> None: ...

class Observer(_message.Message):
    __slots__ = ("pid", "command")
    PID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    pid: int
    command: str
    def __init__(self, pid: _Optional[int] = ..., command: _Optional[str] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("monotonic_ns", "unix_ns", "daemon_start_unix_ns", "daemon_version", "topology", "cores", "devices", "links", "sessions", "models", "observers", "sessions_opened", "sessions_closed", "faults", "ended_session_totals")
    MONOTONIC_NS_FIELD_NUMBER: _ClassVar[int]
    UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    DAEMON_START_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    DAEMON_VERSION_FIELD_NUMBER: _ClassVar[int]
    TOPOLOGY_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    OBSERVERS_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_OPENED_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_CLOSED_FIELD_NUMBER: _ClassVar[int]
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    ENDED_SESSION_TOTALS_FIELD_NUMBER: _ClassVar[int]
    monotonic_ns: int
    unix_ns: int
    daemon_start_unix_ns: int
    daemon_version: str
    topology: Topology
    cores: _containers.RepeatedCompositeFieldContainer[CoreCounters]
    devices: _containers.RepeatedCompositeFieldContainer[DeviceCounters]
    links: _containers.RepeatedCompositeFieldContainer[LinkCounters]
    sessions: _containers.RepeatedCompositeFieldContainer[SessionInfo]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    observers: _containers.RepeatedCompositeFieldContainer[Observer]
    sessions_opened: int
    sessions_closed: int
    faults: _containers.RepeatedCompositeFieldContainer[Fault]
    ended_session_totals: _containers.RepeatedCompositeFieldContainer[EndedSessionTotals]
    def __init__(self, monotonic_ns: _Optional[int] = ..., unix_ns: _Optional[int] = ..., daemon_start_unix_ns: _Optional[int] = ..., daemon_version: _Optional[str] = ..., topology: _Optional[_Union[Topology, _Mapping]] = ..., cores: _Optional[_Iterable[_Union[CoreCounters, _Mapping]]] = ..., devices: _Optional[_Iterable[_Union[DeviceCounters, _Mapping]]] = ..., links: _Optional[_Iterable[_Union[LinkCounters, _Mapping]]] = ..., sessions: _Optional[_Iterable[_Union[SessionInfo, _Mapping]]] = ..., models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., observers: _Optional[_Iterable[_Union[Observer, _Mapping]]] = ..., sessions_opened: _Optional[int] = ..., sessions_closed: _Optional[int] = ..., faults: _Optional[_Iterable[_Union[Fault, _Mapping]]] = ..., ended_session_totals: _Optional[_Iterable[_Union[EndedSessionTotals, _Mapping]]] = ...) -> None: ...

class EndedSessionTotals(_message.Message):
    __slots__ = ("tag", "executions", "errors")
    TAG_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    tag: str
    executions: ExecutionCounts
    errors: ErrorCounts
    def __init__(self, tag: _Optional[str] = ..., executions: _Optional[_Union[ExecutionCounts, _Mapping]] = ..., errors: _Optional[_Union[ErrorCounts, _Mapping]] = ...) -> None: ...

class Parameter(_message.Message):
    __slots__ = ("name", "kind", "shape", "dtype")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: ParameterKind
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: DType
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[ParameterKind, str]] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[_Union[DType, str]] = ...) -> None: ...

class Constant(_message.Message):
    __slots__ = ("name", "shape", "dtype", "data", "tensor_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: DType
    data: bytes
    tensor_id: int
    def __init__(self, name: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[_Union[DType, str]] = ..., data: _Optional[bytes] = ..., tensor_id: _Optional[int] = ...) -> None: ...

class Tile(_message.Message):
    __slots__ = ("name", "buffer", "shape", "dtype")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BUFFER_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    buffer: Buffer
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: DType
    def __init__(self, name: _Optional[str] = ..., buffer: _Optional[_Union[Buffer, str]] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[_Union[DType, str]] = ...) -> None: ...

class Slice(_message.Message):
    __slots__ = ("start", "stop", "step")
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    start: int
    stop: int
    step: int
    def __init__(self, start: _Optional[int] = ..., stop: _Optional[int] = ..., step: _Optional[int] = ...) -> None: ...

class Ref(_message.Message):
    __slots__ = ("name", "slices", "free_shape")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SLICES_FIELD_NUMBER: _ClassVar[int]
    FREE_SHAPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    slices: _containers.RepeatedCompositeFieldContainer[Slice]
    free_shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., slices: _Optional[_Iterable[_Union[Slice, _Mapping]]] = ..., free_shape: _Optional[_Iterable[int]] = ...) -> None: ...

class DmaCopy(_message.Message):
    __slots__ = ("dst", "src")
    DST_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    dst: Ref
    src: Ref
    def __init__(self, dst: _Optional[_Union[Ref, _Mapping]] = ..., src: _Optional[_Union[Ref, _Mapping]] = ...) -> None: ...

class Matmul(_message.Message):
    __slots__ = ("dst", "stationary", "moving", "accumulate")
    DST_FIELD_NUMBER: _ClassVar[int]
    STATIONARY_FIELD_NUMBER: _ClassVar[int]
    MOVING_FIELD_NUMBER: _ClassVar[int]
    ACCUMULATE_FIELD_NUMBER: _ClassVar[int]
    dst: Ref
    stationary: Ref
    moving: Ref
    accumulate: bool
    def __init__(self, dst: _Optional[_Union[Ref, _Mapping]] = ..., stationary: _Optional[_Union[Ref, _Mapping]] = ..., moving: _Optional[_Union[Ref, _Mapping]] = ..., accumulate: _Optional[bool] = ...) -> None: ...

class Activation(_message.Message):
    __slots__ = ("dst", "src", "function", "scale", "bias", "scale_tile", "alpha", "reduce_dst")
    DST_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    BIAS_FIELD_NUMBER: _ClassVar[int]
    SCALE_TILE_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    REDUCE_DST_FIELD_NUMBER: _ClassVar[int]
    dst: Ref
    src: Ref
    function: ActivationFunction
    scale: float
    bias: Ref
    scale_tile: Ref
    alpha: float
    reduce_dst: Ref
    def __init__(self, dst: _Optional[_Union[Ref, _Mapping]] = ..., src: _Optional[_Union[Ref, _Mapping]] = ..., function: _Optional[_Union[ActivationFunction, str]] = ..., scale: _Optional[float] = ..., bias: _Optional[_Union[Ref, _Mapping]] = ..., scale_tile: _Optional[_Union[Ref, _Mapping]] = ..., alpha: _Optional[float] = ..., reduce_dst: _Optional[_Union[Ref, _Mapping]] = ...) -> None: ...

class TensorReduce(_message.Message):
    __slots__ = ("dst", "src", "op", "free_shape", "axes", "negate")
    DST_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    FREE_SHAPE_FIELD_NUMBER: _ClassVar[int]
    AXES_FIELD_NUMBER: _ClassVar[int]
    NEGATE_FIELD_NUMBER: _ClassVar[int]
    dst: Ref
    src: Ref
    op: AluOp
    free_shape: _containers.RepeatedScalarFieldContainer[int]
    axes: int
    negate: bool
    def __init__(self, dst: _Optional[_Union[Ref, _Mapping]] = ..., src: _Optional[_Union[Ref, _Mapping]] = ..., op: _Optional[_Union[AluOp, str]] = ..., free_shape: _Optional[_Iterable[int]] = ..., axes: _Optional[int] = ..., negate: _Optional[bool] = ...) -> None: ...

class TensorTensor(_message.Message):
    __slots__ = ("dst", "a", "b", "op", "engine")
    DST_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    dst: Ref
    a: Ref
    b: Ref
    op: AluOp
    engine: Engine
    def __init__(self, dst: _Optional[_Union[Ref, _Mapping]] = ..., a: _Optional[_Union[Ref, _Mapping]] = ..., b: _Optional[_Union[Ref, _Mapping]] = ..., op: _Optional[_Union[AluOp, str]] = ..., engine: _Optional[_Union[Engine, str]] = ...) -> None: ...

class Transpose(_message.Message):
    __slots__ = ("dst", "src", "engine")
    DST_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    dst: Ref
    src: Ref
    engine: Engine
    def __init__(self, dst: _Optional[_Union[Ref, _Mapping]] = ..., src: _Optional[_Union[Ref, _Mapping]] = ..., engine: _Optional[_Union[Engine, str]] = ...) -> None: ...

class ScalarOperand(_message.Message):
    __slots__ = ("value", "tile")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TILE_FIELD_NUMBER: _ClassVar[int]
    value: float
    tile: Ref
    def __init__(self, value: _Optional[float] = ..., tile: _Optional[_Union[Ref, _Mapping]] = ...) -> None: ...

class TensorScalar(_message.Message):
    __slots__ = ("dst", "src", "op0", "operand0", "reverse0", "op1", "operand1", "reverse1", "engine")
    DST_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    OP0_FIELD_NUMBER: _ClassVar[int]
    OPERAND0_FIELD_NUMBER: _ClassVar[int]
    REVERSE0_FIELD_NUMBER: _ClassVar[int]
    OP1_FIELD_NUMBER: _ClassVar[int]
    OPERAND1_FIELD_NUMBER: _ClassVar[int]
    REVERSE1_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    dst: Ref
    src: Ref
    op0: AluOp
    operand0: ScalarOperand
    reverse0: bool
    op1: AluOp
    operand1: ScalarOperand
    reverse1: bool
    engine: Engine
    def __init__(self, dst: _Optional[_Union[Ref, _Mapping]] = ..., src: _Optional[_Union[Ref, _Mapping]] = ..., op0: _Optional[_Union[AluOp, str]] = ..., operand0: _Optional[_Union[ScalarOperand, _Mapping]] = ..., reverse0: _Optional[bool] = ..., op1: _Optional[_Union[AluOp, str]] = ..., operand1: _Optional[_Union[ScalarOperand, _Mapping]] = ..., reverse1: _Optional[bool] = ..., engine: _Optional[_Union[Engine, str]] = ...) -> None: ...

class BnStats(_message.Message):
    __slots__ = ("dst", "src")
    DST_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    dst: Ref
    src: Ref
    def __init__(self, dst: _Optional[_Union[Ref, _Mapping]] = ..., src: _Optional[_Union[Ref, _Mapping]] = ...) -> None: ...

class BnAggr(_message.Message):
    __slots__ = ("dst", "src")
    DST_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    dst: Ref
    src: Ref
    def __init__(self, dst: _Optional[_Union[Ref, _Mapping]] = ..., src: _Optional[_Union[Ref, _Mapping]] = ...) -> None: ...

class AccessPattern(_message.Message):
    __slots__ = ("step", "num")
    STEP_FIELD_NUMBER: _ClassVar[int]
    NUM_FIELD_NUMBER: _ClassVar[int]
    step: int
    num: int
    def __init__(self, step: _Optional[int] = ..., num: _Optional[int] = ...) -> None: ...

class Iota(_message.Message):
    __slots__ = ("dst", "pattern", "offset", "channel_multiplier")
    DST_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    dst: Ref
    pattern: _containers.RepeatedCompositeFieldContainer[AccessPattern]
    offset: int
    channel_multiplier: int
    def __init__(self, dst: _Optional[_Union[Ref, _Mapping]] = ..., pattern: _Optional[_Iterable[_Union[AccessPattern, _Mapping]]] = ..., offset: _Optional[int] = ..., channel_multiplier: _Optional[int] = ...) -> None: ...

class AffineSelect(_message.Message):
    __slots__ = ("dst", "on_true", "on_false_value", "pattern", "offset", "channel_multiplier", "cmp_op")
    DST_FIELD_NUMBER: _ClassVar[int]
    ON_TRUE_FIELD_NUMBER: _ClassVar[int]
    ON_FALSE_VALUE_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    CMP_OP_FIELD_NUMBER: _ClassVar[int]
    dst: Ref
    on_true: Ref
    on_false_value: float
    pattern: _containers.RepeatedCompositeFieldContainer[AccessPattern]
    offset: int
    channel_multiplier: int
    cmp_op: AluOp
    def __init__(self, dst: _Optional[_Union[Ref, _Mapping]] = ..., on_true: _Optional[_Union[Ref, _Mapping]] = ..., on_false_value: _Optional[float] = ..., pattern: _Optional[_Iterable[_Union[AccessPattern, _Mapping]]] = ..., offset: _Optional[int] = ..., channel_multiplier: _Optional[int] = ..., cmp_op: _Optional[_Union[AluOp, str]] = ...) -> None: ...

class TensorPartitionReduce(_message.Message):
    __slots__ = ("dst", "src", "op")
    DST_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    dst: Ref
    src: Ref
    op: AluOp
    def __init__(self, dst: _Optional[_Union[Ref, _Mapping]] = ..., src: _Optional[_Union[Ref, _Mapping]] = ..., op: _Optional[_Union[AluOp, str]] = ...) -> None: ...

class CustomOp(_message.Message):
    __slots__ = ("name", "outputs", "inputs", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    outputs: _containers.RepeatedCompositeFieldContainer[Ref]
    inputs: _containers.RepeatedCompositeFieldContainer[Ref]
    attributes: _containers.ScalarMap[str, float]
    def __init__(self, name: _Optional[str] = ..., outputs: _Optional[_Iterable[_Union[Ref, _Mapping]]] = ..., inputs: _Optional[_Iterable[_Union[Ref, _Mapping]]] = ..., attributes: _Optional[_Mapping[str, float]] = ...) -> None: ...

class Memset(_message.Message):
    __slots__ = ("dst", "value", "engine")
    DST_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    dst: Ref
    value: float
    engine: Engine
    def __init__(self, dst: _Optional[_Union[Ref, _Mapping]] = ..., value: _Optional[float] = ..., engine: _Optional[_Union[Engine, str]] = ...) -> None: ...

class TensorCopy(_message.Message):
    __slots__ = ("dst", "src", "engine")
    DST_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    dst: Ref
    src: Ref
    engine: Engine
    def __init__(self, dst: _Optional[_Union[Ref, _Mapping]] = ..., src: _Optional[_Union[Ref, _Mapping]] = ..., engine: _Optional[_Union[Engine, str]] = ...) -> None: ...

class ReplicaGroup(_message.Message):
    __slots__ = ("core_ids",)
    CORE_IDS_FIELD_NUMBER: _ClassVar[int]
    core_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, core_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class AllReduce(_message.Message):
    __slots__ = ("dst", "src", "op", "group")
    DST_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    dst: Ref
    src: Ref
    op: AluOp
    group: ReplicaGroup
    def __init__(self, dst: _Optional[_Union[Ref, _Mapping]] = ..., src: _Optional[_Union[Ref, _Mapping]] = ..., op: _Optional[_Union[AluOp, str]] = ..., group: _Optional[_Union[ReplicaGroup, _Mapping]] = ...) -> None: ...

class AllGather(_message.Message):
    __slots__ = ("dst", "src", "axis", "group")
    DST_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    AXIS_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    dst: Ref
    src: Ref
    axis: int
    group: ReplicaGroup
    def __init__(self, dst: _Optional[_Union[Ref, _Mapping]] = ..., src: _Optional[_Union[Ref, _Mapping]] = ..., axis: _Optional[int] = ..., group: _Optional[_Union[ReplicaGroup, _Mapping]] = ...) -> None: ...

class ReduceScatter(_message.Message):
    __slots__ = ("dst", "src", "op", "axis", "group")
    DST_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    AXIS_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    dst: Ref
    src: Ref
    op: AluOp
    axis: int
    group: ReplicaGroup
    def __init__(self, dst: _Optional[_Union[Ref, _Mapping]] = ..., src: _Optional[_Union[Ref, _Mapping]] = ..., op: _Optional[_Union[AluOp, str]] = ..., axis: _Optional[int] = ..., group: _Optional[_Union[ReplicaGroup, _Mapping]] = ...) -> None: ...

class SendRecv(_message.Message):
    __slots__ = ("dst", "src", "send_to", "recv_from")
    DST_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    SEND_TO_FIELD_NUMBER: _ClassVar[int]
    RECV_FROM_FIELD_NUMBER: _ClassVar[int]
    dst: Ref
    src: Ref
    send_to: int
    recv_from: int
    def __init__(self, dst: _Optional[_Union[Ref, _Mapping]] = ..., src: _Optional[_Union[Ref, _Mapping]] = ..., send_to: _Optional[int] = ..., recv_from: _Optional[int] = ...) -> None: ...

class Permute(_message.Message):
    __slots__ = ("dst", "src", "shift", "group")
    DST_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    SHIFT_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    dst: Ref
    src: Ref
    shift: int
    group: ReplicaGroup
    def __init__(self, dst: _Optional[_Union[Ref, _Mapping]] = ..., src: _Optional[_Union[Ref, _Mapping]] = ..., shift: _Optional[int] = ..., group: _Optional[_Union[ReplicaGroup, _Mapping]] = ...) -> None: ...

class Instruction(_message.Message):
    __slots__ = ("dma_copy", "matmul", "activation", "tensor_reduce", "tensor_tensor", "transpose", "tensor_scalar", "bn_stats", "bn_aggr", "iota", "affine_select", "tensor_partition_reduce", "custom_op", "memset", "tensor_copy", "all_reduce", "all_gather", "reduce_scatter", "send_recv", "permute")
    DMA_COPY_FIELD_NUMBER: _ClassVar[int]
    MATMUL_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    TENSOR_REDUCE_FIELD_NUMBER: _ClassVar[int]
    TENSOR_TENSOR_FIELD_NUMBER: _ClassVar[int]
    TRANSPOSE_FIELD_NUMBER: _ClassVar[int]
    TENSOR_SCALAR_FIELD_NUMBER: _ClassVar[int]
    BN_STATS_FIELD_NUMBER: _ClassVar[int]
    BN_AGGR_FIELD_NUMBER: _ClassVar[int]
    IOTA_FIELD_NUMBER: _ClassVar[int]
    AFFINE_SELECT_FIELD_NUMBER: _ClassVar[int]
    TENSOR_PARTITION_REDUCE_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_OP_FIELD_NUMBER: _ClassVar[int]
    MEMSET_FIELD_NUMBER: _ClassVar[int]
    TENSOR_COPY_FIELD_NUMBER: _ClassVar[int]
    ALL_REDUCE_FIELD_NUMBER: _ClassVar[int]
    ALL_GATHER_FIELD_NUMBER: _ClassVar[int]
    REDUCE_SCATTER_FIELD_NUMBER: _ClassVar[int]
    SEND_RECV_FIELD_NUMBER: _ClassVar[int]
    PERMUTE_FIELD_NUMBER: _ClassVar[int]
    dma_copy: DmaCopy
    matmul: Matmul
    activation: Activation
    tensor_reduce: TensorReduce
    tensor_tensor: TensorTensor
    transpose: Transpose
    tensor_scalar: TensorScalar
    bn_stats: BnStats
    bn_aggr: BnAggr
    iota: Iota
    affine_select: AffineSelect
    tensor_partition_reduce: TensorPartitionReduce
    custom_op: CustomOp
    memset: Memset
    tensor_copy: TensorCopy
    all_reduce: AllReduce
    all_gather: AllGather
    reduce_scatter: ReduceScatter
    send_recv: SendRecv
    permute: Permute
    def __init__(self, dma_copy: _Optional[_Union[DmaCopy, _Mapping]] = ..., matmul: _Optional[_Union[Matmul, _Mapping]] = ..., activation: _Optional[_Union[Activation, _Mapping]] = ..., tensor_reduce: _Optional[_Union[TensorReduce, _Mapping]] = ..., tensor_tensor: _Optional[_Union[TensorTensor, _Mapping]] = ..., transpose: _Optional[_Union[Transpose, _Mapping]] = ..., tensor_scalar: _Optional[_Union[TensorScalar, _Mapping]] = ..., bn_stats: _Optional[_Union[BnStats, _Mapping]] = ..., bn_aggr: _Optional[_Union[BnAggr, _Mapping]] = ..., iota: _Optional[_Union[Iota, _Mapping]] = ..., affine_select: _Optional[_Union[AffineSelect, _Mapping]] = ..., tensor_partition_reduce: _Optional[_Union[TensorPartitionReduce, _Mapping]] = ..., custom_op: _Optional[_Union[CustomOp, _Mapping]] = ..., memset: _Optional[_Union[Memset, _Mapping]] = ..., tensor_copy: _Optional[_Union[TensorCopy, _Mapping]] = ..., all_reduce: _Optional[_Union[AllReduce, _Mapping]] = ..., all_gather: _Optional[_Union[AllGather, _Mapping]] = ..., reduce_scatter: _Optional[_Union[ReduceScatter, _Mapping]] = ..., send_recv: _Optional[_Union[SendRecv, _Mapping]] = ..., permute: _Optional[_Union[Permute, _Mapping]] = ...) -> None: ...

class Program(_message.Message):
    __slots__ = ("parameters", "constants", "tiles", "instructions")
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    CONSTANTS_FIELD_NUMBER: _ClassVar[int]
    TILES_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    parameters: _containers.RepeatedCompositeFieldContainer[Parameter]
    constants: _containers.RepeatedCompositeFieldContainer[Constant]
    tiles: _containers.RepeatedCompositeFieldContainer[Tile]
    instructions: _containers.RepeatedCompositeFieldContainer[Instruction]
    def __init__(self, parameters: _Optional[_Iterable[_Union[Parameter, _Mapping]]] = ..., constants: _Optional[_Iterable[_Union[Constant, _Mapping]]] = ..., tiles: _Optional[_Iterable[_Union[Tile, _Mapping]]] = ..., instructions: _Optional[_Iterable[_Union[Instruction, _Mapping]]] = ...) -> None: ...

class GetTopologyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("interval_ns", "queue_depth")
    INTERVAL_NS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    interval_ns: int
    queue_depth: int
    def __init__(self, interval_ns: _Optional[int] = ..., queue_depth: _Optional[int] = ...) -> None: ...

class WatchFrame(_message.Message):
    __slots__ = ("snapshot", "missed_frames")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    MISSED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    snapshot: Snapshot
    missed_frames: int
    def __init__(self, snapshot: _Optional[_Union[Snapshot, _Mapping]] = ..., missed_frames: _Optional[int] = ...) -> None: ...

class ObserveRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ObserveEvent(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetProfileRequest(_message.Message):
    __slots__ = ("model_id", "core_id", "session_id")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    CORE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: int
    core_id: int
    session_id: int
    def __init__(self, model_id: _Optional[int] = ..., core_id: _Optional[int] = ..., session_id: _Optional[int] = ...) -> None: ...

class Profile(_message.Message):
    __slots__ = ("model_id", "model_name", "core_id", "session_id", "instance_type", "profile_json")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    CORE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    PROFILE_JSON_FIELD_NUMBER: _ClassVar[int]
    model_id: int
    model_name: str
    core_id: int
    session_id: int
    instance_type: str
    profile_json: bytes
    def __init__(self, model_id: _Optional[int] = ..., model_name: _Optional[str] = ..., core_id: _Optional[int] = ..., session_id: _Optional[int] = ..., instance_type: _Optional[str] = ..., profile_json: _Optional[bytes] = ...) -> None: ...

class OpenSessionRequest(_message.Message):
    __slots__ = ("pid", "command", "runtime_version", "tag", "visible_cores", "num_cores", "exec_timeout_ns")
    PID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    VISIBLE_CORES_FIELD_NUMBER: _ClassVar[int]
    NUM_CORES_FIELD_NUMBER: _ClassVar[int]
    EXEC_TIMEOUT_NS_FIELD_NUMBER: _ClassVar[int]
    pid: int
    command: str
    runtime_version: str
    tag: str
    visible_cores: str
    num_cores: int
    exec_timeout_ns: int
    def __init__(self, pid: _Optional[int] = ..., command: _Optional[str] = ..., runtime_version: _Optional[str] = ..., tag: _Optional[str] = ..., visible_cores: _Optional[str] = ..., num_cores: _Optional[int] = ..., exec_timeout_ns: _Optional[int] = ...) -> None: ...

class SessionOpened(_message.Message):
    __slots__ = ("session_id", "session_key", "core_ids", "topology")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    CORE_IDS_FIELD_NUMBER: _ClassVar[int]
    TOPOLOGY_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    session_key: str
    core_ids: _containers.RepeatedScalarFieldContainer[int]
    topology: Topology
    def __init__(self, session_id: _Optional[int] = ..., session_key: _Optional[str] = ..., core_ids: _Optional[_Iterable[int]] = ..., topology: _Optional[_Union[Topology, _Mapping]] = ...) -> None: ...

class SessionClosing(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class SessionEvent(_message.Message):
    __slots__ = ("opened", "closing")
    OPENED_FIELD_NUMBER: _ClassVar[int]
    CLOSING_FIELD_NUMBER: _ClassVar[int]
    opened: SessionOpened
    closing: SessionClosing
    def __init__(self, opened: _Optional[_Union[SessionOpened, _Mapping]] = ..., closing: _Optional[_Union[SessionClosing, _Mapping]] = ...) -> None: ...

class AllocateTensorRequest(_message.Message):
    __slots__ = ("name", "shape", "dtype", "placement", "core_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    CORE_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: DType
    placement: Placement
    core_id: int
    def __init__(self, name: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[_Union[DType, str]] = ..., placement: _Optional[_Union[Placement, str]] = ..., core_id: _Optional[int] = ...) -> None: ...

class TensorInfo(_message.Message):
    __slots__ = ("tensor_id", "name", "shape", "dtype", "placement", "core_id", "device_index", "size_bytes", "offset")
    TENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    CORE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_INDEX_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    tensor_id: int
    name: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: DType
    placement: Placement
    core_id: int
    device_index: int
    size_bytes: int
    offset: int
    def __init__(self, tensor_id: _Optional[int] = ..., name: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[_Union[DType, str]] = ..., placement: _Optional[_Union[Placement, str]] = ..., core_id: _Optional[int] = ..., device_index: _Optional[int] = ..., size_bytes: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class WriteTensorChunk(_message.Message):
    __slots__ = ("tensor_id", "offset", "data")
    TENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    tensor_id: int
    offset: int
    data: bytes
    def __init__(self, tensor_id: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class WriteTensorResponse(_message.Message):
    __slots__ = ("bytes_written",)
    BYTES_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    bytes_written: int
    def __init__(self, bytes_written: _Optional[int] = ...) -> None: ...

class ReadTensorRequest(_message.Message):
    __slots__ = ("tensor_id", "offset", "length", "chunk_bytes")
    TENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    tensor_id: int
    offset: int
    length: int
    chunk_bytes: int
    def __init__(self, tensor_id: _Optional[int] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ..., chunk_bytes: _Optional[int] = ...) -> None: ...

class TensorChunk(_message.Message):
    __slots__ = ("offset", "data")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    offset: int
    data: bytes
    def __init__(self, offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class CopyTensorRequest(_message.Message):
    __slots__ = ("src_tensor_id", "dst_tensor_id")
    SRC_TENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    DST_TENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    src_tensor_id: int
    dst_tensor_id: int
    def __init__(self, src_tensor_id: _Optional[int] = ..., dst_tensor_id: _Optional[int] = ...) -> None: ...

class CopyTensorResponse(_message.Message):
    __slots__ = ("bytes_copied",)
    BYTES_COPIED_FIELD_NUMBER: _ClassVar[int]
    bytes_copied: int
    def __init__(self, bytes_copied: _Optional[int] = ...) -> None: ...

class FreeTensorRequest(_message.Message):
    __slots__ = ("tensor_id",)
    TENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    tensor_id: int
    def __init__(self, tensor_id: _Optional[int] = ...) -> None: ...

class FreeTensorResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SubgraphProgram(_message.Message):
    __slots__ = ("core_id", "program")
    CORE_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_FIELD_NUMBER: _ClassVar[int]
    core_id: int
    program: Program
    def __init__(self, core_id: _Optional[int] = ..., program: _Optional[_Union[Program, _Mapping]] = ...) -> None: ...

class LoadModelRequest(_message.Message):
    __slots__ = ("name", "subgraphs", "scratchpad_bytes", "runtime_memory_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SUBGRAPHS_FIELD_NUMBER: _ClassVar[int]
    SCRATCHPAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    subgraphs: _containers.RepeatedCompositeFieldContainer[SubgraphProgram]
    scratchpad_bytes: int
    runtime_memory_bytes: int
    def __init__(self, name: _Optional[str] = ..., subgraphs: _Optional[_Iterable[_Union[SubgraphProgram, _Mapping]]] = ..., scratchpad_bytes: _Optional[int] = ..., runtime_memory_bytes: _Optional[int] = ...) -> None: ...

class UnloadModelRequest(_message.Message):
    __slots__ = ("model_id",)
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: int
    def __init__(self, model_id: _Optional[int] = ...) -> None: ...

class UnloadModelResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TensorBinding(_message.Message):
    __slots__ = ("core_id", "name", "tensor_id")
    CORE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    core_id: int
    name: str
    tensor_id: int
    def __init__(self, core_id: _Optional[int] = ..., name: _Optional[str] = ..., tensor_id: _Optional[int] = ...) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("model_id", "bindings", "timing_only")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    BINDINGS_FIELD_NUMBER: _ClassVar[int]
    TIMING_ONLY_FIELD_NUMBER: _ClassVar[int]
    model_id: int
    bindings: _containers.RepeatedCompositeFieldContainer[TensorBinding]
    timing_only: bool
    def __init__(self, model_id: _Optional[int] = ..., bindings: _Optional[_Iterable[_Union[TensorBinding, _Mapping]]] = ..., timing_only: _Optional[bool] = ...) -> None: ...

class EngineTime(_message.Message):
    __slots__ = ("engine", "busy_ns")
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    BUSY_NS_FIELD_NUMBER: _ClassVar[int]
    engine: Engine
    busy_ns: int
    def __init__(self, engine: _Optional[_Union[Engine, str]] = ..., busy_ns: _Optional[int] = ...) -> None: ...

class ExecuteResponse(_message.Message):
    __slots__ = ("status", "device_latency_ns", "total_latency_ns", "message", "flops", "engines", "error_kind")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_LATENCY_NS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_LATENCY_NS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FLOPS_FIELD_NUMBER: _ClassVar[int]
    ENGINES_FIELD_NUMBER: _ClassVar[int]
    ERROR_KIND_FIELD_NUMBER: _ClassVar[int]
    status: ExecutionStatus
    device_latency_ns: int
    total_latency_ns: int
    message: str
    flops: int
    engines: _containers.RepeatedCompositeFieldContainer[EngineTime]
    error_kind: ErrorKind
    def __init__(self, status: _Optional[_Union[ExecutionStatus, str]] = ..., device_latency_ns: _Optional[int] = ..., total_latency_ns: _Optional[int] = ..., message: _Optional[str] = ..., flops: _Optional[int] = ..., engines: _Optional[_Iterable[_Union[EngineTime, _Mapping]]] = ..., error_kind: _Optional[_Union[ErrorKind, str]] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LoadSpec(_message.Message):
    __slots__ = ("model_id", "bindings", "timing_only", "in_flight_per_core", "rate_per_second", "arrivals", "duration_ns", "count", "seed", "steps", "max_failed_requests", "step_order")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    BINDINGS_FIELD_NUMBER: _ClassVar[int]
    TIMING_ONLY_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_PER_CORE_FIELD_NUMBER: _ClassVar[int]
    RATE_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    ARRIVALS_FIELD_NUMBER: _ClassVar[int]
    DURATION_NS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_FAILED_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    STEP_ORDER_FIELD_NUMBER: _ClassVar[int]
    model_id: int
    bindings: _containers.RepeatedCompositeFieldContainer[TensorBinding]
    timing_only: bool
    in_flight_per_core: int
    rate_per_second: float
    arrivals: Arrivals
    duration_ns: int
    count: int
    seed: int
    steps: _containers.RepeatedCompositeFieldContainer[RequestStep]
    max_failed_requests: int
    step_order: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, model_id: _Optional[int] = ..., bindings: _Optional[_Iterable[_Union[TensorBinding, _Mapping]]] = ..., timing_only: _Optional[bool] = ..., in_flight_per_core: _Optional[int] = ..., rate_per_second: _Optional[float] = ..., arrivals: _Optional[_Union[Arrivals, str]] = ..., duration_ns: _Optional[int] = ..., count: _Optional[int] = ..., seed: _Optional[int] = ..., steps: _Optional[_Iterable[_Union[RequestStep, _Mapping]]] = ..., max_failed_requests: _Optional[int] = ..., step_order: _Optional[_Iterable[int]] = ...) -> None: ...

class RequestStep(_message.Message):
    __slots__ = ("model_id", "bindings", "host_ns", "ends_item")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    BINDINGS_FIELD_NUMBER: _ClassVar[int]
    HOST_NS_FIELD_NUMBER: _ClassVar[int]
    ENDS_ITEM_FIELD_NUMBER: _ClassVar[int]
    model_id: int
    bindings: _containers.RepeatedCompositeFieldContainer[TensorBinding]
    host_ns: int
    ends_item: bool
    def __init__(self, model_id: _Optional[int] = ..., bindings: _Optional[_Iterable[_Union[TensorBinding, _Mapping]]] = ..., host_ns: _Optional[int] = ..., ends_item: _Optional[bool] = ...) -> None: ...

class RequestStats(_message.Message):
    __slots__ = ("requests", "abandoned", "latency", "modeled_latency", "first_item_latency", "modeled_first_item_latency", "item_latency", "modeled_item_latency")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    ABANDONED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    MODELED_LATENCY_FIELD_NUMBER: _ClassVar[int]
    FIRST_ITEM_LATENCY_FIELD_NUMBER: _ClassVar[int]
    MODELED_FIRST_ITEM_LATENCY_FIELD_NUMBER: _ClassVar[int]
    ITEM_LATENCY_FIELD_NUMBER: _ClassVar[int]
    MODELED_ITEM_LATENCY_FIELD_NUMBER: _ClassVar[int]
    requests: ExecutionCounts
    abandoned: int
    latency: Histogram
    modeled_latency: Histogram
    first_item_latency: Histogram
    modeled_first_item_latency: Histogram
    item_latency: Histogram
    modeled_item_latency: Histogram
    def __init__(self, requests: _Optional[_Union[ExecutionCounts, _Mapping]] = ..., abandoned: _Optional[int] = ..., latency: _Optional[_Union[Histogram, _Mapping]] = ..., modeled_latency: _Optional[_Union[Histogram, _Mapping]] = ..., first_item_latency: _Optional[_Union[Histogram, _Mapping]] = ..., modeled_first_item_latency: _Optional[_Union[Histogram, _Mapping]] = ..., item_latency: _Optional[_Union[Histogram, _Mapping]] = ..., modeled_item_latency: _Optional[_Union[Histogram, _Mapping]] = ...) -> None: ...

class LoadProgress(_message.Message):
    __slots__ = ("load_id", "model_id", "state", "spec", "submitted", "in_flight", "discarded", "stats", "started_monotonic_ns", "elapsed_ns", "device_time_ns", "modeled_rate_per_second", "last_error", "stop_reason", "requests")
    LOAD_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    DISCARDED_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    STARTED_MONOTONIC_NS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_NS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    MODELED_RATE_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    load_id: int
    model_id: int
    state: LoadState
    spec: LoadSpec
    submitted: int
    in_flight: int
    discarded: int
    stats: ExecutionStats
    started_monotonic_ns: int
    elapsed_ns: int
    device_time_ns: int
    modeled_rate_per_second: float
    last_error: str
    stop_reason: str
    requests: RequestStats
    def __init__(self, load_id: _Optional[int] = ..., model_id: _Optional[int] = ..., state: _Optional[_Union[LoadState, str]] = ..., spec: _Optional[_Union[LoadSpec, _Mapping]] = ..., submitted: _Optional[int] = ..., in_flight: _Optional[int] = ..., discarded: _Optional[int] = ..., stats: _Optional[_Union[ExecutionStats, _Mapping]] = ..., started_monotonic_ns: _Optional[int] = ..., elapsed_ns: _Optional[int] = ..., device_time_ns: _Optional[int] = ..., modeled_rate_per_second: _Optional[float] = ..., last_error: _Optional[str] = ..., stop_reason: _Optional[str] = ..., requests: _Optional[_Union[RequestStats, _Mapping]] = ...) -> None: ...

class StartLoadRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: LoadSpec
    def __init__(self, spec: _Optional[_Union[LoadSpec, _Mapping]] = ...) -> None: ...

class GetLoadRequest(_message.Message):
    __slots__ = ("load_id", "wait_ns")
    LOAD_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_NS_FIELD_NUMBER: _ClassVar[int]
    load_id: int
    wait_ns: int
    def __init__(self, load_id: _Optional[int] = ..., wait_ns: _Optional[int] = ...) -> None: ...

class StopLoadRequest(_message.Message):
    __slots__ = ("load_id",)
    LOAD_ID_FIELD_NUMBER: _ClassVar[int]
    load_id: int
    def __init__(self, load_id: _Optional[int] = ...) -> None: ...

class ListLoadsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListLoadsResponse(_message.Message):
    __slots__ = ("loads",)
    LOADS_FIELD_NUMBER: _ClassVar[int]
    loads: _containers.RepeatedCompositeFieldContainer[LoadProgress]
    def __init__(self, loads: _Optional[_Iterable[_Union[LoadProgress, _Mapping]]] = ...) -> None: ...

class EndSessionRequest(_message.Message):
    __slots__ = ("session_id", "reason")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    reason: str
    def __init__(self, session_id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class EndSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Fault(_message.Message):
    __slots__ = ("fault_id", "kind", "device_index", "core_id", "link_id", "count", "duration_ns", "expires_unix_ns", "description")
    FAULT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_INDEX_FIELD_NUMBER: _ClassVar[int]
    CORE_ID_FIELD_NUMBER: _ClassVar[int]
    LINK_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DURATION_NS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    fault_id: int
    kind: FaultKind
    device_index: int
    core_id: int
    link_id: int
    count: int
    duration_ns: int
    expires_unix_ns: int
    description: str
    def __init__(self, fault_id: _Optional[int] = ..., kind: _Optional[_Union[FaultKind, str]] = ..., device_index: _Optional[int] = ..., core_id: _Optional[int] = ..., link_id: _Optional[int] = ..., count: _Optional[int] = ..., duration_ns: _Optional[int] = ..., expires_unix_ns: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class InjectFaultRequest(_message.Message):
    __slots__ = ("fault",)
    FAULT_FIELD_NUMBER: _ClassVar[int]
    fault: Fault
    def __init__(self, fault: _Optional[_Union[Fault, _Mapping]] = ...) -> None: ...

class ClearFaultsRequest(_message.Message):
    __slots__ = ("fault_id",)
    FAULT_ID_FIELD_NUMBER: _ClassVar[int]
    fault_id: int
    def __init__(self, fault_id: _Optional[int] = ...) -> None: ...

class ClearFaultsResponse(_message.Message):
    __slots__ = ("cleared",)
    CLEARED_FIELD_NUMBER: _ClassVar[int]
    cleared: int
    def __init__(self, cleared: _Optional[int] = ...) -> None: ...

class ListFaultsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListFaultsResponse(_message.Message):
    __slots__ = ("faults",)
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    faults: _containers.RepeatedCompositeFieldContainer[Fault]
    def __init__(self, faults: _Optional[_Iterable[_Union[Fault, _Mapping]]] = ...) -> None: ...
