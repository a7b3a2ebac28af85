"""OpenAI wire format (what the service speaks of it) plus the routing explanation it adds.

Requests refuse what they do not know: a field OpenAI's API has but this service does not honour, or a
field nobody defined, gets a `400` naming it rather than being dropped on the floor (REFUSED says why for
OpenAI's own). Every field they do know is range-checked here, before anything reaches the engine.

One module per endpoint, as vLLM splits its own protocol: `chat` (and its `streaming` chunks), `completions`,
`models`, `adapters`, `health`, `routing` (the explanation, `/v1/route`, `/v1/router`) and `training` (the
router's admin endpoints); what several of them share is in `common`, `messages`, `sampling` and `logprobs`.
Import from here: every model is re-exported.
"""

from router.protocol.adapters import (
    AdapterDeleted,
    AdapterFolder,
    AdapterFolderList,
    AdapterInfo,
    AdapterList,
)
from router.protocol.chat import (
    ChatChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    FunctionDefinition,
    NamedFunction,
    NamedToolChoice,
    ResponseMessage,
    ToolDefinition,
)
from router.protocol.common import ErrorInfo, ErrorResponse, Usage
from router.protocol.completions import CompletionChoice, CompletionRequest, CompletionResponse
from router.protocol.health import EngineInfo, EngineSetupInfo, ReplicaInfo
from router.protocol.logprobs import ChatLogprobs, CompletionLogprobs, TokenLogprob, TopLogprob
from router.protocol.messages import ChatMessage, TextPart, ToolCall, ToolCallFunction
from router.protocol.models import ModelCard, ModelList
from router.protocol.routing import RouteRequest, RouterInfo, RoutingInfo
from router.protocol.sampling import (
    MAX_LOGPROBS,
    MAX_STOPS,
    REFUSED,
    Bias,
    StreamOptions,
    StructuredOutputs,
    TokenId,
    _SamplingFields,
)
from router.protocol.streaming import (
    ChatChunkChoice,
    ChatCompletionChunk,
    DeltaFunction,
    DeltaMessage,
    DeltaToolCall,
)
from router.protocol.training import (
    LabelScore,
    PolicyScore,
    RouterEvalRequest,
    RouterEvaluation,
    RouterExamples,
    RouterTrainRequest,
    TrainingExample,
)

# `_SamplingFields` too: the serving layer reads the fields chat and completions share through it.
__all__ = [
    "AdapterDeleted",
    "AdapterFolder",
    "AdapterFolderList",
    "AdapterInfo",
    "AdapterList",
    "Bias",
    "ChatChoice",
    "ChatChunkChoice",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatCompletionResponse",
    "ChatLogprobs",
    "ChatMessage",
    "CompletionChoice",
    "CompletionLogprobs",
    "CompletionRequest",
    "CompletionResponse",
    "DeltaFunction",
    "DeltaMessage",
    "DeltaToolCall",
    "EngineInfo",
    "EngineSetupInfo",
    "ErrorInfo",
    "ErrorResponse",
    "FunctionDefinition",
    "LabelScore",
    "PolicyScore",
    "MAX_LOGPROBS",
    "MAX_STOPS",
    "ModelCard",
    "ModelList",
    "NamedFunction",
    "NamedToolChoice",
    "REFUSED",
    "ReplicaInfo",
    "ResponseMessage",
    "RouteRequest",
    "RouterEvalRequest",
    "RouterEvaluation",
    "RouterExamples",
    "RouterInfo",
    "RouterTrainRequest",
    "RoutingInfo",
    "StreamOptions",
    "StructuredOutputs",
    "TextPart",
    "TokenId",
    "TokenLogprob",
    "ToolCall",
    "ToolCallFunction",
    "ToolDefinition",
    "TopLogprob",
    "TrainingExample",
    "Usage",
    "_SamplingFields",
]
