// What metric plugins may use from core (re-exported by src/registry/index.ts): classification arithmetic.
export { argmaxRows, confusionMatrix, presentClasses, classCounts, cohenKappa, type ClassCounts, midranks, binaryAuc, rocCurve, prCurve, averagePrecision, type RocCurve, type PrCurve } from './classification.js';
