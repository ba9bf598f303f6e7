"""neuron-ls: lists the Neuron devices of the (software) instance, byte-compatible with the AWS tool.

cli (flags, errors) -> listing (what is shown, from one daemon snapshot) -> text_output / json_output.
Nothing here imports grpc or the generated protobuf modules at import time: start-up time matters.
"""
