// Two-stage models (HDMIL): the pre-screener stage trained against a frozen stage-1 model's instance gates, the
// two inference modes (all instances / screened) with kept-instance rates and per-stage timing, and stage
// outputs stored under the original PyTorch keys. Generic over plugins: it reads capabilities
// (`trainable`, `gateLogits`, `branchKeepMask`), never plugin names.
export {
  checkScreeningStage,
  crossEntropyHost,
  fullPass,
  precomputedFeatures,
  screenedPass,
  softmaxHost,
  thumbsTensor,
  unionFraction,
  type InstanceReader,
  type ScreeningStage,
  type SlidePass,
  type StageOneModel,
  type StageTimes,
} from './screening.js';
export { inferenceMetrics, runInference, type InferenceMode, type InferenceOptions, type InferenceResult, type SlideInference } from './inference.js';
export { trainPrescreenerStage, type PrescreenerEpochRecord, type PrescreenerStageOptions, type PrescreenerStageResult } from './prescreener-stage.js';
export { loadModuleTorchState, loadStageOneCheckpoint, moduleTorchState, moveAside, readStageWeights, saveStageWeights, type StoredStage } from './weights.js';
export { runPrescreenedFold, type PrescreenedFoldOptions, type PrescreenedFoldResult } from './fold.js';
