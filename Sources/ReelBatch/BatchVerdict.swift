import ReelCore

/// What validation made of one row of a batch: the spec it runs with, or the error that names the column at fault.
public struct BatchVerdict: Sendable, Equatable {
    /// The row's number as the user sees it (see `BatchInputRow.row`).
    public var row: Int
    /// The row's priority; 0 for a rejected row.
    public var priority: Int
    public var result: Result<GenerationSpec, ReelError>

    public init(row: Int, priority: Int, result: Result<GenerationSpec, ReelError>) {
        self.row = row
        self.priority = priority
        self.result = result
    }

    public var spec: GenerationSpec? { try? result.get() }

    public var error: ReelError? {
        guard case .failure(let error) = result else { return nil }
        return error
    }
}
