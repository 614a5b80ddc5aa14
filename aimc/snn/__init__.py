"""Spiking networks with PCM: LIF and PCM neurons, STDP, PCM synapses, Diehl & Cook 2015."""

from .diehl_cook import DiehlCookConfig, DiehlCookNet, assign_labels, predict
from .neurons import (
    LIF,
    LIFParams,
    LIFState,
    PCMNeuron,
    PCMNeuronParams,
    PCMNeuronState,
    lif_constant_input,
    lif_init,
    lif_rate_constant_input,
    lif_step,
    pcm_neuron_init,
    pcm_neuron_step,
)
from .stdp import (
    STDPParams,
    Traces,
    stdp_dw,
    stdp_dw_sparse,
    stdp_step,
    stdp_window,
    traces_decay,
    traces_spike,
)
from .synapses import IdealSynapses, PCMSynapseConfig, PCMSynapses, stochastic_round

__all__ = [
    "LIF",
    "DiehlCookConfig",
    "DiehlCookNet",
    "IdealSynapses",
    "LIFParams",
    "LIFState",
    "PCMNeuron",
    "PCMNeuronParams",
    "PCMNeuronState",
    "PCMSynapseConfig",
    "PCMSynapses",
    "STDPParams",
    "Traces",
    "assign_labels",
    "lif_constant_input",
    "lif_init",
    "lif_rate_constant_input",
    "lif_step",
    "pcm_neuron_init",
    "pcm_neuron_step",
    "predict",
    "stdp_dw",
    "stdp_dw_sparse",
    "stdp_step",
    "stdp_window",
    "stochastic_round",
    "traces_decay",
    "traces_spike",
]
