extension Validation {
    /// Validates one row of a batch or one submission: the model it names, its priority, then its spec.
    ///
    /// - Parameter runner: who runs the rows, as the model's error names it ("this server", "reel batch").
    public static func resolve(
        _ row: SpecRow, model: ModelInfo, limits: GenerationLimits = .standard, styles: StyleLibrary = .builtIn,
        loras: LoRACatalog = .empty, runner: String
    ) throws(ReelError) -> GenerationSpec {
        if let named = row.model, named != model.name {
            throw .invalid(
                "model",
                "\(runner) runs the model '\(model.name)', not \(named.quotedForMessage(limit: 80)); leave model out "
                    + "or give that name")
        }
        if let priority = row.priority, !SpecRow.priorityRange.contains(priority) {
            throw .invalid(
                "priority",
                "priority must be between \(SpecRow.priorityRange.lowerBound) and "
                    + "\(SpecRow.priorityRange.upperBound), not \(priority)")
        }
        return try resolve(row.request, model: model, limits: limits, styles: styles, loras: loras)
    }
}
