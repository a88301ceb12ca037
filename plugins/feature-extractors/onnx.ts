/**
 * Any image encoder exported to ONNX, run by ONNX Runtime (feature-extractor/onnx)
 * Paper: none — model format. ONNX (onnx.ai) graphs as `torch.onnx.export` writes them; ONNX Runtime's Node
 *   binding (CPU execution provider). Users export ResNet-50-trunc, UNI, CONCH… once from PyTorch; nothing is
 *   downloaded at run time.
 * Implements: patches → bilinear resize to inputSize → (v / 255 − mean) / std → float32 NCHW [B, 3, S, S] → the
 *   model's first output, flattened per row to [B, D]
 * Symbols: B batch · S inputSize · D feature width (read from the first output)
 * Choices: the model must take one float32 NCHW image input with a dynamic batch axis (export with
 *   dynamic_axes={"input": {0: "batch"}}); the model file's SHA-256 is part of the identity written into every
 *   feature file (docs/slides.md#feature-extraction)
 * Checked against: PyTorch on a small CNN exported by test/reference/onnx_encoder.py (test/plugins/feature-extractors/onnx.test.ts,
 *   plugins/feature-extractors/onnx.golden.json)
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import {
  ConfigError, DataError, definePlugin, featureExtractorBaseOptions, resizePatches, sha256File, toNormalisedNchw,
  type FeatureExtractor, type FeatureExtractorContext, type FeatureExtractorIdentity, type PatchBatch,
} from 'milkit';

export const OnnxExtractorOptions = z.strictObject({
  model: z.string().default('').describe('path of the .onnx encoder (relative to the working directory); required'),
  ...featureExtractorBaseOptions(224, 32),
  threads: z.int().min(0).default(0).describe('intra-op threads of ONNX Runtime (0: its default, one per core)'),
});
export type OnnxExtractorOptions = z.output<typeof OnnxExtractorOptions>;

type Ort = typeof import('onnxruntime-node');
type Session = Awaited<ReturnType<Ort['InferenceSession']['create']>>;

class OnnxExtractor implements FeatureExtractor {
  identity: FeatureExtractorIdentity;
  readonly batchSize: number;

  private constructor(private readonly ort: Ort, private readonly session: Session, private readonly options: OnnxExtractorOptions, private readonly file: string, sha: string, dim: number) {
    this.batchSize = options.batchSize;
    this.identity = { name: 'feature-extractor/onnx', modelSha256: sha, inputSize: options.inputSize, normalisation: options.normalisation, dim };
  }

  static async create(options: OnnxExtractorOptions, ctx: FeatureExtractorContext): Promise<OnnxExtractor> {
    const key = `${ctx.key ?? 'extractor'}.model`;
    if (!options.model) {
      throw new ConfigError('missing-model', `${key} is not set: the onnx extractor needs the path of an .onnx image encoder.`, {
        hint: 'Export your encoder once with torch.onnx.export (dynamic batch axis) and pass it, e.g. --extractor-set model=encoders/resnet50-trunc.onnx.',
      });
    }
    const file = path.resolve(ctx.baseDir, options.model);
    if (!existsSync(file)) {
      throw new ConfigError('missing-model', `${key}: model file not found.`, { where: { file, key }, hint: 'Check the path (relative paths start at the working directory); milkit never downloads models.' });
    }
    const ort = await import('onnxruntime-node');
    let session: Session;
    try {
      session = await ort.InferenceSession.create(file, { ...(options.threads > 0 ? { intraOpNumThreads: options.threads } : {}), graphOptimizationLevel: 'all' });
    } catch (cause) {
      throw new DataError('bad-model', 'ONNX Runtime cannot load the model.', { where: { file, key }, hint: 'Is it an .onnx file exported with torch.onnx.export?', cause });
    }
    if (session.inputNames.length !== 1) {
      throw new DataError('bad-model', `the model has ${session.inputNames.length} inputs (${session.inputNames.join(', ')}); an image encoder takes one.`, { where: { file, key } });
    }
    // The width comes from running one blank image: output shapes in the graph may be symbolic.
    const extractor = new OnnxExtractor(ort, session, options, file, await sha256File(file), 0);
    const probe = await extractor.run({ count: 1, side: options.inputSize, rgb: new Uint8Array(options.inputSize * options.inputSize * 3) });
    extractor.identity = { ...extractor.identity, dim: probe.dim };
    return extractor;
  }

  private async run(batch: PatchBatch): Promise<{ data: Float32Array; dim: number }> {
    const input = resizePatches(batch, this.options.inputSize);
    const size = this.options.inputSize;
    const tensor = new this.ort.Tensor('float32', toNormalisedNchw(input, this.options.normalisation), [input.count, 3, size, size]);
    let outputs: Awaited<ReturnType<Session['run']>>;
    try {
      outputs = await this.session.run({ [this.session.inputNames[0] as string]: tensor });
    } catch (cause) {
      throw new DataError('model-run-failed', `ONNX Runtime failed on a batch of ${input.count} image(s) of ${size}×${size}.`, {
        where: { file: this.file },
        hint: 'The model must take float32 [batch, 3, inputSize, inputSize] with a dynamic batch axis; check inputSize.',
        cause,
      });
    } finally {
      tensor.dispose();
    }
    const output = outputs[this.session.outputNames[0] as string];
    if (output === undefined || output.type !== 'float32') throw new DataError('bad-model', 'the model\'s first output is not float32.', { where: { file: this.file } });
    const data = output.data as Float32Array;
    const dim = data.length / input.count;
    const copy = Float32Array.from(data);
    for (const value of Object.values(outputs)) value.dispose();
    return { data: copy, dim };
  }

  async embed(batch: PatchBatch): Promise<Float32Array> {
    if (batch.count === 0) return new Float32Array(0);
    return (await this.run(batch)).data;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

export default definePlugin({
  kind: 'feature-extractor',
  name: 'onnx',
  summary: 'any ONNX image encoder (exported once from PyTorch) through ONNX Runtime on the CPU',
  options: OnnxExtractorOptions,
  capabilities: { modelFile: true, deterministic: false },
  create: (options, ctx) => OnnxExtractor.create(options, ctx),
});
