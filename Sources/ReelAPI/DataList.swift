/// `{"data": [...]}`, the envelope of every list but the pages of jobs: events, styles, workers.
public struct DataList<Element> {
    public var data: [Element]

    public init(data: [Element]) { self.data = data }
}

extension DataList: Encodable where Element: Encodable {}
extension DataList: Decodable where Element: Decodable {}
extension DataList: Sendable where Element: Sendable {}
extension DataList: Equatable where Element: Equatable {}
