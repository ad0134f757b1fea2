import Foundation
import ReelAPI
import ReelCore
import ReelStore

extension JobResource {
    /// `job` as the API shows it: progress only while it runs, an error only once it failed, outputs only once it
    /// succeeded.
    init(_ job: Job) {
        let spec = job.spec
        var error: Failure?
        // A retried job keeps its last error while it is queued again; only a failed job reports one.
        if job.state == .failed {
            error = Failure(code: job.errorCode ?? "failed", message: job.errorMessage ?? "the job failed")
        }
        var outputs: Outputs?
        if job.state == .succeeded, let made = job.outputs {
            outputs = Outputs(
                videoURL: "/v1/jobs/\(job.id)/video",
                frameCount: made.framesDirectory == nil ? nil : made.frameCount,
                secondsPerStage: made.secondsPerStage)
        }
        self.init(
            id: job.id, state: job.state, progress: job.state == .running ? job.progress.map(Progress.init) : nil,
            spec: Spec(
                prompt: spec.prompt, negativePrompt: spec.negativePrompt, size: spec.size, width: spec.width,
                height: spec.height, frames: spec.frames, fps: spec.fps, seconds: spec.seconds, steps: spec.steps,
                guidance: spec.guidance, guidance2: spec.guidance2, seed: spec.seed, model: spec.model,
                pngFrames: spec.pngFrames, style: spec.style, userPrompt: spec.userPrompt,
                interpolate: spec.interpolate ?? 1, outputFrames: spec.outputFrames, outputFPS: spec.outputFPS,
                requestedSeconds: spec.requestedSeconds, image: spec.image?.id, lastImage: spec.lastImage?.id,
                fit: spec.fit?.rawValue,
                loras: (spec.loras ?? []).map {
                    .init(name: $0.name, sha256: $0.sha256, scale: $0.scale, expert: $0.expert.rawValue)
                }, recipe: spec.recipe),
            priority: job.priority, attempts: job.attempts, cancelRequested: job.cancelRequested,
            createdAt: job.createdAt, startedAt: job.startedAt, finishedAt: job.finishedAt, error: error,
            outputs: outputs, batchID: job.batchID, node: job.node)
    }
}

extension JobResource.Progress {
    init(_ progress: JobProgress) {
        self.init(
            stage: progress.stage, step: progress.step, total: progress.total,
            percent: progress.total > 0 ? (Double(progress.step) / Double(progress.total) * 1000).rounded() / 10 : 0)
    }
}
