// A slide reader that wraps a real one and records every region request, so a test can say exactly which patches
// a pipeline read at which level (e.g. that HDMIL's screened inference reads at 20× only what the pre-screener kept).
import type { RegionRequest, RgbImage, SlideReader } from '../../src/core/slides/reader.js';

export interface CountingReader extends SlideReader {
  readonly requests: RegionRequest[];
}

export function countingReader(inner: SlideReader): CountingReader {
  const requests: RegionRequest[] = [];
  return {
    file: inner.file,
    levels: inner.levels,
    properties: inner.properties,
    associatedImages: inner.associatedImages,
    requests,
    readRegion(request: RegionRequest): Promise<RgbImage> {
      requests.push({ ...request });
      return inner.readRegion(request);
    },
    readAssociatedImage: (name) => inner.readAssociatedImage(name),
    close: () => inner.close(),
  };
}
